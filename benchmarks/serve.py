"""Benchmark of the scoring service: /rank against a no-op BentoML endpoint, and /rank_batch.

Starts the real service (``nextbest serve``) on a loopback port and drives it
with ``wrk`` (Debian package ``wrk``), using a Lua script that posts a random
known customer per request. In the same run it measures the service's ``/noop``
BentoML endpoint, which parses a JSON body and returns it: the ratio of /rank to
that baseline is the cost of deciding, net of the HTTP stack.

Reported, at 1, 8 and 32 concurrent connections: requests/s and p50/p95/p99
latency; then p99 of /rank when paced at 50% of its best throughput; then
/rank_batch customers/s.

The service ranks /rank from per-customer plans that hold the model reason codes
of each customer's leading actions, and remembers the others it computed, per
loaded state, so a customer seen again costs less. How often a reason code has
to be computed (TreeSHAP, ~0.2 ms) depends on how many distinct customers the
load generator draws from (``--sample``; 0 = every customer of the workspace):
the benchmark reports the share found ready (plan or memo) during the /rank
runs next to the figures.

Usage::

    .venv/bin/python benchmarks/serve.py                      # builds workspace/bench if absent
    .venv/bin/python benchmarks/serve.py --workspace PATH --workers 2 --duration 10

Prints a table and writes ``<workspace>/reports/serve_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from nextbest import logfile
from nextbest.serving.process import stop_tree, wait_ready

ROOT = Path(__file__).resolve().parents[1]
NEXTBEST = [sys.executable, "-m", "nextbest.cli"] if not (ROOT / ".venv/bin/nextbest").exists() else [str(ROOT / ".venv/bin/nextbest")]

#: The end of every wrk script: latency percentiles in a form parse_wrk reads.
LUA_DONE = r"""
done = function(summary, latency, requests)
  for _, p in ipairs({50, 95, 99}) do
    io.write(string.format("P%%d_US %%d\n", p, latency:percentile(p)))
  end
end
"""

LUA = r"""
-- One POST per request with a random customer from the list; optional pacing.
local ids = {%(ids)s}
local path = "%(path)s"
local top_k = %(top_k)d
local pace_ms = %(pace_ms)f
local poisson = %(poisson)s
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(auth)s
request = function()
  local id = ids[math.random(#ids)]
  local body
  if path == "/noop" then
    body = string.format('{"customer_id": %%d}', id)
  else
    body = string.format('{"customer_id": %%d, "top_k": %%d}', id, top_k)
  end
  return wrk.format(nil, path, nil, body)
end
if pace_ms > 0 then
  -- fixed: every connection waits pace_ms after each response; poisson: an exponential
  -- wait of that mean, so connections that one micro-batch answered together drift apart.
  delay = function()
    if poisson then return -pace_ms * math.log(1 - math.random()) end
    return pace_ms
  end
end
""" + LUA_DONE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(workspace: Path, *args: str) -> None:
    subprocess.run([*NEXTBEST, "--workspace", str(workspace), *args], check=True)


def build_workspace(workspace: Path, customers: int) -> None:
    """A trained workspace: synthetic history, features, a champion model."""
    run_cli(workspace, "init")
    run_cli(workspace, "data", "generate", "--customers", str(customers), "--seed", "7")
    run_cli(workspace, "features", "build")
    run_cli(workspace, "train")


def start_server(workspace: Path, port: int, workers: int, token: str | None) -> subprocess.Popen[bytes]:
    # The baseline route, POST /noop, exists only when this setting asks for it.
    env = {**os.environ, "NEXTBEST_WORKSPACE": str(workspace), "NEXTBEST_BENCHMARK_NOOP": "true"}
    env.pop("NEXTBEST_API_TOKEN", None)
    if token:
        env["NEXTBEST_API_TOKEN"] = token
    log = open(workspace / "serve_benchmark.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [*NEXTBEST, "--workspace", str(workspace), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if wait_ready(proc, f"http://127.0.0.1:{port}", 600):
        return proc
    if proc.poll() is not None:
        raise SystemExit(f"server exited with {proc.returncode}; see {workspace / 'serve_benchmark.log'}")
    stop_server(proc)
    raise SystemExit("server not ready within 600 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    stop_tree(proc, signal.SIGTERM, 30)


def known_customers(workspace: Path, n: int = 2000) -> list[int]:
    """A fixed pseudo-random sample of ``n`` customers (0 = all): ordered by a hash, so runs are comparable."""
    import duckdb

    con = duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True)
    try:
        sql = "SELECT customer_id FROM customers ORDER BY hash(customer_id)"
        rows = con.execute(f"{sql} LIMIT ?", [n]).fetchall() if n > 0 else con.execute(sql).fetchall()
    finally:
        con.close()
    return [int(r[0]) for r in rows]


def wrk(port: int, path: str, ids: list[int], *, connections: int, duration: int, top_k: int, pace_ms: float = 0.0,
        token: str | None = None, poisson: bool = False) -> dict[str, float]:
    """Run wrk once; returns requests/s, latency percentiles (ms) and error counts."""
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script = LUA % {"ids": ",".join(map(str, ids)), "path": path, "top_k": top_k, "pace_ms": pace_ms, "auth": auth,
                    "poisson": "true" if poisson else "false"}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{duration}s",
             "-s", f.name, f"http://127.0.0.1:{port}"],
            check=True, capture_output=True, text=True, timeout=duration + 60,
        ).stdout
    finally:
        os.unlink(f.name)
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    """Throughput and errors from wrk's summary; percentiles from the script's done() hook."""
    result: dict[str, float] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct, us in re.findall(r"^P(\d+)_US (\d+)$", out, re.M):
        result[f"p{pct}_ms"] = int(us) / 1000
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    timeouts = re.search(r"Socket errors:.*timeout (\d+)", out)
    result["timeouts"] = float(timeouts.group(1)) if timeouts else 0.0
    return result


def reason_sources(port: int, token: str | None) -> dict[str, float]:
    """The service's reason-code counts so far, by source (``plan``, ``memo``, ``computed``), from /metrics."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=30).text
    counts: dict[str, float] = {"plan": 0.0, "memo": 0.0, "computed": 0.0}
    for source, value in re.findall(r'^nextbest_reason_codes_total\{[^}]*source="(\w+)"[^}]*\} ([\d.e+]+)$', text, re.M):
        counts[source] = counts.get(source, 0.0) + float(value)
    return counts


def rank_batch_rate(port: int, ids: list[int], batch: int, rounds: int, token: str | None) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ranked = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=300) as client:
        # Warm-up outside the timing.
        client.post("/rank_batch", json={"customer_ids": ids[:100]}).raise_for_status()
        batch = min(batch, len(ids))  # distinct customers per call: repeats would be ranked in extra rounds
        started = time.perf_counter()
        for r in range(rounds):
            chunk = [ids[(r * batch + i) % len(ids)] for i in range(batch)]
            response = client.post("/rank_batch", json={"customer_ids": chunk, "top_k": 3})
            response.raise_for_status()
            ranked += response.json()["count"]
        elapsed = time.perf_counter() - started
    return {"customers": ranked, "seconds": elapsed, "customers_per_s": ranked / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=ROOT / "workspace" / "bench")
    parser.add_argument("--customers", type=int, default=20_000, help="Customers when building the workspace.")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run (bounded).")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000, help="Customers per /rank_batch call.")
    parser.add_argument("--batch-rounds", type=int, default=4)
    parser.add_argument("--sample", type=int, default=2000,
                        help="Distinct customers the load generator draws from (0 = every customer of the workspace).")
    parser.add_argument("--token", default=None, help="Run the server with this bearer token.")
    parser.add_argument("--pacing", choices=["fixed", "poisson", "both"], default="both",
                        help="Waits between a connection's paced requests: fixed, exponential (Poisson arrivals) or both runs.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")

    ws = args.workspace.resolve()
    if not (ws / "warehouse.duckdb").exists():
        build_workspace(ws, args.customers)
    ids = known_customers(ws, args.sample)
    port = free_port()
    proc = start_server(ws, port, args.workers, args.token)
    results: dict[str, object] = {"workers": args.workers, "duration_s": args.duration, "top_k": args.top_k,
                                  "cpus": os.cpu_count(), "sample": len(ids)}
    try:
        # Warm-up: first requests load lazy code paths.
        wrk(port, "/rank", ids, connections=2, duration=2, top_k=args.top_k, token=args.token)
        wrk(port, "/noop", ids, connections=2, duration=2, top_k=args.top_k, token=args.token)
        runs: list[dict[str, object]] = []
        before = reason_sources(port, args.token)
        for c in args.connections:
            for path in ("/noop", "/rank"):
                r = wrk(port, path, ids, connections=c, duration=args.duration, top_k=args.top_k, token=args.token)
                runs.append({"path": path, "connections": c, **r})
                print(f"{path:6s} c={c:<3d} {r['rps']:8.0f} req/s  p50 {r.get('p50_ms', float('nan')):6.2f} ms"
                      f"  p95 {r.get('p95_ms', float('nan')):6.2f} ms  p99 {r.get('p99_ms', float('nan')):6.2f} ms"
                      f"  non-2xx {r['errors']:.0f}", flush=True)
        results["runs"] = runs
        after = reason_sources(port, args.token)
        ready = sum(after[s] - before[s] for s in ("plan", "memo"))
        computed = after["computed"] - before["computed"]
        results["reason_ready_rate"] = ready / (ready + computed) if ready + computed else None
        best = max((r for r in runs if r["path"] == "/rank"), key=lambda r: r["rps"])  # type: ignore[arg-type,return-value]
        ratios = {}
        for c in args.connections:
            rank = next(r for r in runs if r["path"] == "/rank" and r["connections"] == c)
            noop = next(r for r in runs if r["path"] == "/noop" and r["connections"] == c)
            ratios[c] = rank["rps"] / noop["rps"]  # type: ignore[operator]
        results["rank_to_noop_ratio"] = ratios
        # Pace each connection so the total is half the best throughput: delay = c / (rate/2).
        c_half = int(best["connections"])  # type: ignore[arg-type]
        half_rate = float(best["rps"]) / 2  # type: ignore[arg-type]
        pace_ms = 1000.0 * c_half / half_rate
        paced_runs: dict[str, dict[str, float]] = {}
        for mode in (["fixed", "poisson"] if args.pacing == "both" else [args.pacing]):
            paced = wrk(port, "/rank", ids, connections=c_half, duration=args.duration, top_k=args.top_k,
                        pace_ms=pace_ms, token=args.token, poisson=mode == "poisson")
            paced_runs[mode] = paced
            print(f"/rank at 50% load, {mode} pacing ({paced['rps']:.0f} req/s on {c_half} conns): "
                  f"p50 {paced.get('p50_ms', float('nan')):.2f} ms  p99 {paced.get('p99_ms', float('nan')):.2f} ms")
        results["rank_at_half_load"] = {"target_rps": half_rate, "connections": c_half, **paced_runs}
        batch = rank_batch_rate(port, ids, args.batch, args.batch_rounds, args.token)
        results["rank_batch"] = batch
        print(f"/rank_batch: {batch['customers_per_s']:.0f} customers/s ({batch['customers']} in {batch['seconds']:.1f} s)")
        for c, ratio in ratios.items():
            print(f"/rank / noop throughput at c={c}: {ratio:.0%}")
        rate = results["reason_ready_rate"]
        print(f"customers drawn: {len(ids)}; reason codes found ready (plan or memo) during the /rank runs: "
              f"{'n/a' if rate is None else f'{rate:.0%}'}")
    finally:
        stop_server(proc)
    out = ws / "reports" / "serve_benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
