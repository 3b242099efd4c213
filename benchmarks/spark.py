"""Spark against the local engine on the same data: feature builds and ``nextbest decide``, in one run.

Two stages, each measured at every size (``--customers``) on both engines:

features
    The raw tables generated in DuckDB as ``benchmarks/features.py`` does (N customers,
    ~50 interactions each, 180 days) and exported as a lake (``nextbest data export``'s
    :func:`~nextbest.spark.lake.export_lake`); each engine builds the snapshot as of the
    last day as ``nextbest features build [--engine spark --lake DIR] --refit`` does: the
    feature models fitted, the customer features and offer history computed.
decide
    The decide tests' world at N customers (:mod:`nextbest.decisioning.decide_world`:
    random but complete features, a registered LightGBM champion, yesterday's contacts,
    a daily capacity on ``web`` that binds) and its lake; each engine runs
    :func:`~nextbest.decisioning.batch.run_decide` as ``nextbest decide --dry-run
    [--engine spark --lake DIR]`` does (deciding is measured, not the live store).

Each world is prepared in a child process and each engine runs in a fresh one, so
this process stays small (it holds one column of each output at a time when it
compares them) and nothing is warm from the engine before. Per engine: wall seconds
of the work (Spark's session start reported apart), CPU seconds and peak resident
memory of the child's whole process tree (Spark's JVM and Python workers included;
sampled every 0.2 s, CPU of exited processes counted through their parents). Then
the Spark/local ratios, core-seconds (CPU: on a shared machine the honest measure of
the work, next to wall time) and dollars per million customers (``--core-hour-usd``,
an on-demand cloud vCPU-hour), and whether both outputs are equal (text and integers
exactly, floats within 1e-9, relative above magnitude 1).

    python benchmarks/spark.py                                        # 100k customers, both stages
    python benchmarks/spark.py --customers 100000 1000000 --master local[2]
    python benchmarks/spark.py --customers 2000 --stages decide --top-k 3

Prints one JSON line per size and stage. Run from the repository root of a clone
with ``pip install -e '.[spark]'`` (or ``make setup``) and Java 17 or later.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pyarrow.parquet as pq

from nextbest import logfile

HERE = Path(__file__).resolve().parent
#: The features stage's as-of: the day after the generated history (benchmarks/features.py).
FEATURES_AS_OF = pd.Timestamp("2024-07-01")
STAGES = ("features", "decide")
#: Each stage's local engine, named as its command names it (``--engine``).
LOCAL = {"features": "duckdb", "decide": "local"}
TOLERANCE = 1e-9


# ---------------------------------------------------------------- children: prepare and run
def _features_bench() -> Any:  # benchmarks/ is not a package: load its generator by path
    spec = importlib.util.spec_from_file_location("features_bench", HERE / "features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(stage: str, n: int, folder: Path, days: int, per_customer: int) -> dict[str, Any]:
    """The world of ``stage`` at ``n`` customers in ``folder``, and its lake."""
    from nextbest.spark.lake import export_lake
    from nextbest.warehouse.db import connect

    lake = folder / "lake"
    if stage == "features":
        warehouse = folder / "bench.duckdb"
        con = connect(warehouse)
        try:
            counts = _features_bench().generate(con, n, days, per_customer)
            con.execute("CHECKPOINT")
            export_lake(con, lake)
        finally:
            con.close()
        return {"warehouse": str(warehouse), "lake": str(lake), "rows": counts}
    from nextbest.decisioning.decide_world import build_world, write_lake

    ws = build_world(folder / "ws", customers=n)
    write_lake(ws, lake)
    return {"workspace": str(ws.root), "lake": str(lake)}


def run_engine(stage: str, engine: str, world: dict[str, Any], master: str, top_k: int, out: Path) -> dict[str, Any]:
    """One engine's run of ``stage`` on ``world``; writes its output to ``out``, returns its figures."""
    session_s = 0.0
    if engine == "spark":
        from nextbest.spark.session import get_session

        began = time.perf_counter()
        spark = get_session(master)
        session_s = time.perf_counter() - began
    began = time.perf_counter()
    facts: dict[str, Any] = {}
    if stage == "features":
        from nextbest.config import load_config

        config = load_config(None)
        if engine == "duckdb":
            from nextbest.features.pipeline import build_offer_history, fit_and_build
            from nextbest.warehouse.db import connect

            con = connect(Path(world["warehouse"]), read_only=True)
            try:
                feats, _ = fit_and_build(con, FEATURES_AS_OF, config)
                hist = build_offer_history(con, FEATURES_AS_OF, config)
            finally:
                con.close()
        else:
            from nextbest.spark.features import SparkEngine, build_snapshots

            _, feats, hist = build_snapshots(SparkEngine(spark, Path(world["lake"])), config, [FEATURES_AS_OF],
                                             write=True).snapshots[0]
        seconds = time.perf_counter() - began
        facts = {"offer_history_rows": len(hist)}
        del hist
        feats.to_parquet(out)
    else:
        from nextbest.decisioning.batch import run_decide
        from nextbest.decisioning.decide_world import DAY
        from nextbest.workspace import Workspace

        summary = run_decide(Workspace.resolve(Path(world["workspace"])), date=DAY.isoformat(), output=out,
                             top_k=top_k, engine=engine, lake=Path(world["lake"]) if engine == "spark" else None,
                             master=master if engine == "spark" else None, dry_run=True)
        seconds = time.perf_counter() - began
        facts = {k: summary[k] for k in ("customers", "rows", "contacts") if k in summary}
    return {"seconds": seconds, "session_s": session_s, **facts}


# ---------------------------------------------------------------- the parent: measure and compare
def measured(payload: dict[str, Any]) -> tuple[dict[str, Any], float, float]:
    """Run this script as a child with ``payload``; its JSON result, the peak RSS (GB) of its process
    tree and the tree's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(payload)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, cpu = 0, 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, cpu
        root = psutil.Process(proc.pid)
        while not done.is_set():
            rss, seconds = 0, 0.0
            for p in [root, *root.children(recursive=True)]:
                try:
                    t = p.cpu_times()  # children_*: its exited children, waited for
                    seconds += t.user + t.system + t.children_user + t.children_system
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak, cpu = max(peak, rss), max(cpu, seconds)
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{payload['task']} {payload['stage']} {payload.get('engine', '')} failed "
                           f"(exit {proc.returncode}):\n{err[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The child and every descendant it waited for, once all have exited: at least the last sample.
    waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(out.strip().splitlines()[-1]), peak / 1024**3, max(cpu, waited)


def differences(got: Path, want: Path) -> dict[str, Any]:
    """Columns of two Parquet files that differ beyond :data:`TOLERANCE` (floats) or at all (others),
    read one column at a time: rows differing and the largest gap."""
    a_file, b_file = pq.ParquetFile(got), pq.ParquetFile(want)
    names = a_file.schema_arrow.names
    if names != b_file.schema_arrow.names or a_file.metadata.num_rows != b_file.metadata.num_rows:
        return {"shape": [[a_file.metadata.num_rows, names], [b_file.metadata.num_rows, b_file.schema_arrow.names]]}
    out: dict[str, Any] = {}
    for c in names:
        a = pq.read_table(got, columns=[c]).column(0).to_pandas()
        b = pq.read_table(want, columns=[c]).column(0).to_pandas()
        if pd.api.types.is_float_dtype(b) or pd.api.types.is_float_dtype(a):
            a, b = a.astype(float), b.astype(float)
            gap = (a - b).abs()
            # 1e-9 absolute up to magnitude 1, relative above: sums of many terms (a score over
            # millions of interactions) round differently in another summation order.
            bad = (gap > TOLERANCE * b.abs().clip(lower=1.0)) | (a.isna() != b.isna())
            if bad.any():
                out[c] = {"rows": int(bad.sum()), "max_gap": float(gap.max()),
                          "at_magnitude": float(b.abs()[gap.idxmax()])}
        else:
            unequal = (a.astype(str) != b.astype(str)) | (a.isna() != b.isna())
            if unequal.any():
                out[c] = {"rows": int(unequal.sum())}
    return out


def run(stage: str, n: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Prepare ``stage``'s world at ``n`` customers, run both engines, compare: one result line."""
    folder.mkdir(parents=True)
    common = {"stage": stage, "customers": n, "folder": str(folder), "days": args.days,
              "per_customer": args.interactions_per_customer}
    began = time.perf_counter()
    world, _, _ = measured({"task": "prepare", **common})
    prepare_s = time.perf_counter() - began
    figures: dict[str, dict[str, Any]] = {}
    outputs: dict[str, Path] = {}
    for engine in (LOCAL[stage], "spark"):
        outputs[engine] = folder / f"{engine}.parquet"
        doc, peak, cpu = measured({"task": "run", **common, "engine": engine, "world": world, "master": args.master,
                                   "top_k": args.top_k, "out": str(outputs[engine])})
        figures[engine] = {"wall_s": round(doc.pop("seconds"), 1), "cpu_s": round(cpu, 1), "peak_gb": round(peak, 2)}
        session_s = doc.pop("session_s")
        if engine == "spark":
            figures[engine]["session_start_s"] = round(session_s, 1)
        figures[engine] |= doc
    differ = differences(outputs["spark"], outputs[LOCAL[stage]])
    local, spark = figures[LOCAL[stage]], figures["spark"]
    per_million = {e: f["cpu_s"] * 1e6 / n for e, f in figures.items()}
    return {
        "stage": stage, "customers": n, "master": args.master, **({"top_k": args.top_k} if stage == "decide" else {}),
        "world": world.get("rows", {}), "prepare_s": round(prepare_s, 1),
        "engines": figures,
        "spark_over_local": {
            "wall": round(spark["wall_s"] / max(local["wall_s"], 0.05), 1),
            "cpu": round(spark["cpu_s"] / max(local["cpu_s"], 0.05), 1),
            "peak_memory": round(spark["peak_gb"] / max(local["peak_gb"], 0.01), 1),
        },
        "core_seconds_per_million": {e: round(s) for e, s in per_million.items()},
        "usd_per_million": {e: round(s / 3600 * args.core_hour_usd, 4) for e, s in per_million.items()},
        "identical_within_1e-9": not differ,
        "differences": differ,
    }


def child(payload: dict[str, Any]) -> None:
    """The child's side of :func:`measured`: one JSON line on stdout."""
    folder = Path(payload["folder"])
    if payload["task"] == "prepare":
        result = prepare(payload["stage"], payload["customers"], folder, payload["days"], payload["per_customer"])
    else:
        result = run_engine(payload["stage"], payload["engine"], payload["world"], payload["master"],
                            payload["top_k"], Path(payload["out"]))
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="What to measure.")
    parser.add_argument("--days", type=int, default=180, help="features: days of generated history.")
    parser.add_argument("--interactions-per-customer", type=int, default=50, help="features: interactions each.")
    parser.add_argument("--top-k", type=int, default=1, help="decide: actions per customer in the file.")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--core-hour-usd", type=float, default=0.04, help="Price of one vCPU-hour.")
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the files (default: a temp dir).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    with tempfile.TemporaryDirectory(prefix="nextbest-spark-bench-", dir=args.dir) as tmp:
        for n in args.customers:
            for stage in args.stages:
                folder = Path(tmp) / f"{stage}_{n}"
                try:
                    print(json.dumps(run(stage, n, args, folder)), flush=True)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)  # a 1M world takes gigabytes


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
