"""``nextbest decide`` benchmark: the local engine against Spark local[2], same world, same run.

The world is the decide tests' (``tests/decisioning/decide_world.py``) at N customers:
a feature snapshot of random but complete features, a registered LightGBM champion,
yesterday's contacts, a daily capacity on ``web`` that binds; its lake is written by
``nextbest data export``. Each engine runs
:func:`nextbest.decisioning.batch.run_decide` (``--dry-run``: deciding, not the live
store, is measured) in a fresh process; peak memory is the highest total RSS of that
process and its children (Spark's JVM and Python workers), sampled every 0.1 s.
The two files are compared (floats within 1e-9).

    python benchmarks/spark_decide.py                       # 100k customers
    python benchmarks/spark_decide.py --customers 1000000 --top-k 3

Prints one JSON line per engine, then the comparison (ratio, per million customers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the decide tests' world builder


def peak_tree_rss(stop: threading.Event, out: list[int]) -> None:
    """Highest total RSS of this process and its descendants until ``stop``."""
    import psutil

    me = psutil.Process()
    while not stop.is_set():
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        out[0] = max(out[0], total)
        stop.wait(0.1)


def child(ws_root: str, lake: str, engine: str, output: str, top_k: int) -> None:
    """Run one engine; print its figures as JSON."""
    from nextbest.decisioning.batch import run_decide
    from nextbest.workspace import Workspace

    ws = Workspace.resolve(Path(ws_root))
    peak, stop = [0], threading.Event()
    sampler = threading.Thread(target=peak_tree_rss, args=(stop, peak), daemon=True)
    sampler.start()
    started = 0.0
    if engine == "spark":
        from nextbest.spark.session import get_session

        t = time.perf_counter()
        get_session("local[2]")
        started = time.perf_counter() - t
    t = time.perf_counter()
    summary = run_decide(ws, date="2024-06-03", output=Path(output), top_k=top_k, engine=engine,
                         lake=Path(lake) if engine == "spark" else None, dry_run=True)
    wall = time.perf_counter() - t
    stop.set()
    sampler.join()
    print(json.dumps({
        "engine": engine, "customers": summary["customers"], "rows": summary["rows"], "wall_s": round(wall, 1),
        "spark_start_s": round(started, 1), "peak_rss_gb": round(peak[0] / 1024**3, 2),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child[:3], args.child[3], args.top_k)
        return

    import numpy as np
    import pandas as pd

    from tests.decisioning.decide_world import build_world, write_lake

    with tempfile.TemporaryDirectory(prefix="nextbest-decide-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        ws = build_world(root / "ws", customers=args.customers)
        lake = write_lake(ws, root / "lake")
        print(json.dumps({"setup_s": round(time.perf_counter() - t, 1), "customers": args.customers}), flush=True)
        results = {}
        for engine in ("local", "spark"):
            out = root / f"{engine}.parquet"
            done = subprocess.run(
                [sys.executable, __file__, "--top-k", str(args.top_k), "--child", str(ws.root), str(lake), engine, str(out)],
                capture_output=True, text=True, check=True,
            )
            line = done.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            results[engine] = json.loads(line)
        a, b = pd.read_parquet(root / "local.parquet"), pd.read_parquet(root / "spark.parquet")
        floats = [c for c in a.columns if a[c].dtype.kind == "f"]
        same = (
            len(a) == len(b)
            and all(a[c].tolist() == b[c].tolist() for c in a.columns if c not in floats)
            and all(np.allclose(a[c], b[c], rtol=0, atol=1e-9, equal_nan=True) for c in floats)
        )
        local, spark = results["local"], results["spark"]
        per_million = 1e6 / args.customers
        print(json.dumps({
            "customers": args.customers, "identical_files": bool(same),
            "spark_over_local": round(spark["wall_s"] / local["wall_s"], 2),
            "local_s_per_million": round(local["wall_s"] * per_million, 1),
            "spark_local2_s_per_million": round(spark["wall_s"] * per_million, 1),
            "peak_rss_gb": {"local": local["peak_rss_gb"], "spark": spark["peak_rss_gb"]},
        }))


if __name__ == "__main__":
    main()
