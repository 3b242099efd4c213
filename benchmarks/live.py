"""Benchmark of the live side: /rank and /feedback, durable before each answer, against a no-op endpoint.

Starts the real service (``nextbest serve``, 1 and 2 workers) on a loopback port
and drives it with ``wrk`` (Debian package ``wrk``) at 8 connections:

* ``/noop``: the BentoML endpoint that does nothing (``NEXTBEST_BENCHMARK_NOOP``), the baseline;
* ``/rank``: every answer waits for its decision's commit to the live store;
* ``/feedback``: every 202 waits for its row's commit; decisions made beforehand with
  ``/rank_batch``, outcomes drawn so nearly every request stores a new row.

Each configuration runs without and with a batch job beside it (``nextbest features
build`` on the same workspace, in a loop for the length of the run). Ratios are taken
within one run, so the machine's other work moves both sides alike: the three paths run
in turn, ``--repeat`` rounds of them, and the table shows each path's median over the
rounds and the median of the rounds' own ``÷ noop`` ratios (on a shared machine a single
noop run varied 2x between runs). Last, it kills
every server process with SIGKILL under load (``wrk`` and a Python client that keeps
what was acknowledged) and counts acknowledged rows missing from the live store.

Usage::

    .venv/bin/python benchmarks/live.py --workspace PATH [--duration 8] [--repeat 3] [--live-url postgresql://...]

A workspace needs a champion and a snapshot (``benchmarks/serve.py`` builds one:
``--workspace workspace/bench``). Prints a table; writes ``<workspace>/reports/live_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import LUA_DONE, NEXTBEST, free_port, known_customers, parse_wrk, start_server, stop_server  # noqa: E402

from nextbest import logfile  # noqa: E402
from nextbest.live.store import LiveStore  # noqa: E402
from nextbest.serving.process import stop_tree  # noqa: E402

FEEDBACK_LUA = r"""
local ids = {%(ids)s}
local kinds = {"open", "click", "visit", "conversion"}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local id = ids[math.random(#ids)]
  local body = string.format('{"decision_id": "%%s", "outcome": "%%s", "timestamp": "2024-06-01T00:00:00Z"}',
                             id, kinds[math.random(#kinds)])
  return wrk.format(nil, "/feedback", nil, body)
end
"""  + LUA_DONE

RANK_LUA = r"""
local ids = {%(ids)s}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body
  if "%(path)s" == "/noop" then
    body = string.format('{"customer_id": %%d}', ids[math.random(#ids)])
  else
    body = string.format('{"customer_id": %%d, "top_k": 3}', ids[math.random(#ids)])
  end
  return wrk.format(nil, "%(path)s", nil, body)
end
"""  + LUA_DONE


def run_wrk(port: int, script: str, connections: int, duration: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "-s", f.name, f"http://127.0.0.1:{port}"],
            check=True, capture_output=True, text=True, timeout=duration + 60,
        ).stdout
    finally:
        os.unlink(f.name)
    return parse_wrk(out)


class BatchJob:
    """``nextbest features build`` in a loop beside the service until stopped; counts runs and failures."""

    def __init__(self, workspace: Path, env: dict[str, str]) -> None:
        self.workspace, self.env = workspace, env
        self.runs = self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            done = subprocess.run([*NEXTBEST, "--workspace", str(self.workspace), "features", "build"],
                                  capture_output=True, env=self.env, timeout=900)
            self.runs += 1
            self.failures += done.returncode != 0

    def __enter__(self) -> BatchJob:
        self._thread.start()
        time.sleep(2)  # the job holds the warehouse by the time the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(900)


def decisions_for_feedback(port: int, ids: list[int], n: int) -> list[str]:
    out: list[str] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
        while len(out) < n:
            r = http.post("/rank_batch", json={"customer_ids": ids[: min(1000, n - len(out))], "top_k": 1})
            r.raise_for_status()
            out.extend(d["decision_id"] for d in r.json()["decisions"])
    return out


def measure(
    workspace: Path, workers: int, duration: int, ids: list[int], env: dict[str, str], batch_job: bool = True,
    repeat: int = 1,
) -> list[dict[str, object]]:
    port = free_port()
    os.environ.update(env)
    proc = start_server(workspace, port, workers, None)
    rows: list[dict[str, object]] = []
    try:
        feedback_ids = decisions_for_feedback(port, ids, 4000)
        scripts = {
            "/noop": RANK_LUA % {"ids": ",".join(map(str, ids)), "path": "/noop"},
            "/rank": RANK_LUA % {"ids": ",".join(map(str, ids)), "path": "/rank"},
            "/feedback": FEEDBACK_LUA % {"ids": ",".join(f'"{d}"' for d in feedback_ids)},
        }
        run_wrk(port, scripts["/rank"], 2, 2)  # warm-up
        for beside in (False, True) if batch_job else (False,):
            job = BatchJob(workspace, {**os.environ, **env}) if beside else None
            if job is not None:
                job.__enter__()
            try:
                for round_ in range(repeat):
                    for path, script in scripts.items():
                        result = run_wrk(port, script, 8, duration)
                        rows.append({"workers": workers, "batch_job": beside, "path": path, "round": round_, **result})
            finally:
                if job is not None:
                    job.__exit__()
                    rows[-1]["batch_job_runs"] = job.runs
                    rows[-1]["batch_job_failures"] = job.failures
    finally:
        stop_server(proc)
    return rows


def summarise(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """One row per (workers, batch job, path): medians over the rounds, and the median of each round's ``÷ noop``.

    A round's ratio divides by the noop run of the same round, moments apart, so drift in the
    machine's other work cancels; the median then drops a round that a burst of it hit.
    """
    noop = {(r["workers"], r["batch_job"], r["round"]): float(r["rps"])  # type: ignore[arg-type]
            for r in rows if r["path"] == "/noop"}
    groups: dict[tuple[object, object, object], list[dict[str, object]]] = {}
    for r in rows:
        groups.setdefault((r["workers"], r["batch_job"], r["path"]), []).append(r)
    out = []
    for (workers, beside, path), runs in groups.items():
        rps = [float(r["rps"]) for r in runs]  # type: ignore[arg-type]
        ratios = [float(r["rps"]) / noop[(workers, beside, r["round"])] for r in runs]  # type: ignore[arg-type]
        row: dict[str, object] = {
            "workers": workers, "batch_job": beside, "path": path, "rounds": len(runs),
            "rps": float(statistics.median(rps)), "rps_min": min(rps), "rps_max": max(rps),
            "p50_ms": float(statistics.median([float(r.get("p50_ms", 0)) for r in runs])),  # type: ignore[arg-type]
            "p99_ms": max(float(r.get("p99_ms", 0)) for r in runs),  # type: ignore[arg-type]
            "errors": int(sum(int(r["errors"]) for r in runs)),  # type: ignore[call-overload]
            "ratio_to_noop": float(statistics.median(ratios)),
        }
        for key in ("batch_job_runs", "batch_job_failures"):
            if any(key in r for r in runs):
                row[key] = int(sum(int(r.get(key, 0)) for r in runs))  # type: ignore[call-overload]
        out.append(row)
    return out


def kill_9_losses(workspace: Path, ids: list[int], env: dict[str, str], store_url: str) -> dict[str, int]:
    """Acknowledged /rank and /feedback rows missing from the live store after SIGKILL of every process."""
    port = free_port()
    os.environ.update(env)
    proc = start_server(workspace, port, 2, None)
    acked_d: list[str] = []
    acked_f: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            i = k
            while not stop.is_set():
                try:
                    r = http.post("/rank", json={"customer_id": ids[i % len(ids)], "top_k": 1})
                    if r.status_code != 200:
                        continue
                    did = r.json()["decision_id"]
                    with lock:
                        acked_d.append(did)
                    f = http.post("/feedback", json={"decision_id": did, "outcome": "open", "timestamp": "2024-06-01T00:00:00Z"})
                    if f.status_code == 202:
                        with lock:
                            acked_f.append(did)
                except httpx.HTTPError:
                    return
                i += 8

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(8)
    stop_tree(proc, signal.SIGKILL, 5)
    stop.set()
    for t in threads:
        t.join(60)
    store = LiveStore(store_url)
    try:
        ds, fs = store.logged_ids()
    finally:
        store.close()
    return {"acknowledged_decisions": len(acked_d), "lost_decisions": len(set(acked_d) - ds),
            "acknowledged_feedback": len(acked_f), "lost_feedback": len(set(acked_f) - fs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--sample", type=int, default=2000, help="distinct customers drawn (0 = all)")
    parser.add_argument("--live-url", default=None, help="live store URL (default the workspace's SQLite)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server worker counts to measure")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the three paths per configuration (median shown)")
    parser.add_argument("--no-batch-job", action="store_true", help="skip the runs with a batch job beside")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 run")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    ws = args.workspace.resolve()
    store_url = args.live_url or f"sqlite:///{ws / 'live.db'}"
    env = {"NEXTBEST_WORKSPACE": str(ws), "NEXTBEST_LIVE_URL": store_url, "NEXTBEST_BENCHMARK_NOOP": "true"}
    ids = known_customers(ws, args.sample)
    load = os.getloadavg()[0]
    runs = [r for workers in args.workers
            for r in measure(ws, workers, args.duration, ids, env, not args.no_batch_job, args.repeat)]
    rows = summarise(runs)
    crash = {} if args.no_kill else kill_9_losses(ws, ids, env, store_url)

    print(f"\nlive store: {LiveStore(store_url).safe_url}; load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f}")
    print(f"medians of {args.repeat} round(s) of {args.duration} s per path; p99 is the worst round's")
    print(f"{'workers':>7} {'batch job':>9} {'path':<10} {'req/s':>8} {'range':>11} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'non-2xx':>7} {'÷ noop':>7}")
    for r in rows:
        spread = f"{r['rps_min']:.0f}-{r['rps_max']:.0f}"
        print(f"{r['workers']:>7} {'yes' if r['batch_job'] else 'no':>9} {r['path']:<10} {r['rps']:>8.0f} {spread:>11} "
              f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {int(r['errors']):>7} {r['ratio_to_noop']:>7.2f}")
        if "batch_job_runs" in r:
            print(f"{'':>18} batch job beside: {r['batch_job_runs']} run(s), {r['batch_job_failures']} failed")
    print(f"kill -9 of every server process under load: {crash}")
    out = ws / "reports" / "live_benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": rows, "runs": runs, "kill_9": crash, "store": LiveStore(store_url).safe_url}, indent=2))


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
