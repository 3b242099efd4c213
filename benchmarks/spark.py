"""Spark against DuckDB on the same feature build: wall time, peak memory, cost per million customers.

The raw tables are generated in DuckDB as ``benchmarks/features.py`` does (N
customers, ~50 interactions each, 180 days), exported as a lake
(``nextbest data export``'s :func:`~nextbest.spark.lake.export_lake`), then each
engine builds the snapshot as of the last day in a process of its own, as
``nextbest features build [--engine spark --lake DIR] --refit`` does: the
feature models fitted, the customer features and offer history computed. Peak
memory is the largest resident set of that process and its children (Spark's
JVM included), sampled every 0.2 s.

    python benchmarks/spark.py                          # 100k customers
    python benchmarks/spark.py --customers 100000 1000000 --master local[2]

Prints one JSON line per size: wall seconds, CPU seconds and peak GB per engine,
the Spark/DuckDB ratios, core-seconds (CPU) and dollars per million customers
(``--core-hour-usd``, an on-demand cloud vCPU-hour), and both builds' equality
(floats within 1e-9).

``nextbest decide`` on both engines is measured by ``benchmarks/spark_decide.py``
(the decide tests' world at N customers, one process per engine).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

HERE = Path(__file__).resolve().parent
END = pd.Timestamp("2024-07-01")


def _features_bench():  # benchmarks/ is not a package: load its generator by path
    spec = importlib.util.spec_from_file_location("features_bench", HERE / "features.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def prepare(n: int, days: int, per_customer: int, folder: Path) -> tuple[Path, Path, dict[str, int]]:
    """A warehouse of ``n`` generated customers and its lake."""
    from nextbest.spark.lake import export_lake
    from nextbest.warehouse.db import connect

    warehouse, lake = folder / f"bench_{n}.duckdb", folder / f"lake_{n}"
    con = connect(warehouse)
    try:
        counts = _features_bench().generate(con, n, days, per_customer)
        con.execute("CHECKPOINT")
        export_lake(con, lake)
    finally:
        con.close()
    return warehouse, lake, counts


def build(engine: str, warehouse: Path, lake: Path, master: str, out: Path) -> None:
    """One engine's build (run in a child process); writes the snapshot to ``out``."""
    from nextbest.config import load_config
    from nextbest.features.pipeline import build_offer_history, fit_and_build

    config = load_config(None)
    began = time.perf_counter()
    if engine == "duckdb":
        from nextbest.warehouse.db import connect

        con = connect(warehouse, read_only=True)
        feats, _ = fit_and_build(con, END, config)
        build_offer_history(con, END, config)
        con.close()
        session_s = 0.0
    else:
        from nextbest.spark.features import SparkEngine, build_snapshots
        from nextbest.spark.session import get_session

        spark = get_session(master)
        session_s = time.perf_counter() - began
        began = time.perf_counter()
        feats = build_snapshots(SparkEngine(spark, lake), config, [END], write=True).snapshots[0][1]
    seconds = time.perf_counter() - began
    feats.to_parquet(out)
    print(json.dumps({"seconds": seconds, "session_s": session_s}))


def measured(args: list[str]) -> tuple[dict[str, float], float, float]:
    """Run ``args`` as a child; its JSON line, the peak RSS (GB) of it and its children, and their
    CPU seconds (last sample: on a shared machine the honest measure of the work, next to wall time)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak, cpu = 0, 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, cpu
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
                cpu = max(cpu, sum(t.user + t.system for t in (p.cpu_times() for p in tree)))
            except psutil.Error:
                pass
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{args[-1]} build failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1]), peak / 1024**3, cpu


def differences(got: pd.DataFrame, want: pd.DataFrame) -> dict[str, object]:
    """Columns that differ beyond 1e-9 (floats) or at all (others): rows and the largest gap."""
    if list(got.columns) != list(want.columns) or len(got) != len(want):
        return {"shape": [list(got.shape), list(want.shape)]}
    out: dict[str, object] = {}
    for c in want.columns:
        a, b = got[c], want[c]
        if pd.api.types.is_float_dtype(b):
            gap = (a.astype(float) - b.astype(float)).abs()
            bad = (gap > 1e-9) | (a.isna() != b.isna())
            if bad.any():
                out[c] = {"rows": int(bad.sum()), "max_gap": float(gap.max())}
        elif not a.astype(str).equals(b.astype(str)):
            out[c] = {"rows": int((a.astype(str) != b.astype(str)).sum())}
    return out


def run(n: int, days: int, per_customer: int, master: str, core_hour_usd: float, folder: Path,
        ) -> dict[str, object]:
    t = time.perf_counter()
    warehouse, lake, counts = prepare(n, days, per_customer, folder)
    prepare_s = time.perf_counter() - t
    figures: dict[str, dict[str, float]] = {}
    frames = {}
    for engine in ("duckdb", "spark"):
        out = folder / f"{engine}_{n}.parquet"
        doc, peak, cpu = measured([sys.executable, __file__, "--build", engine, "--warehouse", str(warehouse),
                              "--lake", str(lake), "--master", master, "--out", str(out)])
        figures[engine] = {"seconds": round(doc["seconds"], 1), "cpu_s": round(cpu, 1), "peak_gb": round(peak, 2)}
        if engine == "spark":
            figures[engine]["session_start_s"] = round(doc["session_s"], 1)
        frames[engine] = pd.read_parquet(out)
    differ = differences(frames["spark"], frames["duckdb"])
    # Core-seconds: CPU time of the process tree (a shared machine stretches wall time, not this).
    per_million = {e: f["cpu_s"] * 1e6 / n for e, f in figures.items()}
    return {
        "customers": n, "rows": counts, "master": master, "prepare_and_export_s": round(prepare_s, 1),
        "duckdb": figures["duckdb"], "spark": figures["spark"],
        "spark_to_duckdb_time": round(figures["spark"]["seconds"] / figures["duckdb"]["seconds"], 1),
        "spark_to_duckdb_cpu": round(figures["spark"]["cpu_s"] / figures["duckdb"]["cpu_s"], 1),
        "core_seconds_per_million": {e: round(s) for e, s in per_million.items()},
        "usd_per_million": {e: round(s / 3600 * core_hour_usd, 4) for e, s in per_million.items()},
        "identical_within_1e-9": not differ,
        "differences": differ,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--interactions-per-customer", type=int, default=50)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--core-hour-usd", type=float, default=0.04, help="Price of one vCPU-hour.")
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the files (default: a temp dir).")
    parser.add_argument("--build", choices=("duckdb", "spark"), help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lake", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.warehouse, args.lake, args.master, args.out)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in args.customers:
            print(json.dumps(run(n, args.days, args.interactions_per_customer, args.master, args.core_hour_usd,
                                 Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
