"""Benchmark the synthetic world generator: wall time, peak memory and row counts.

Usage::

    .venv/bin/python benchmarks/generate.py                      # 100k x 180
    .venv/bin/python benchmarks/generate.py --sizes 100000x180 1000000x180

Each size runs in its own process (so peak RSS is per size) and writes into a
temporary warehouse that is deleted afterwards (``--keep DIR`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nextbest import logfile


def run_one(customers: int, days: int, seed: int, folder: Path) -> dict[str, object]:
    """Generate one world into ``folder`` and measure it (runs in the child process)."""
    from nextbest.warehouse.db import connect
    from nextbest.world import World

    began = time.perf_counter()
    world = World.create(customers, seed=seed)
    con = connect(folder / "warehouse.duckdb")
    try:
        counts = world.write_history(con, days)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    wall = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size_mib = (folder / "warehouse.duckdb").stat().st_size / 2**20
    return {
        "customers": customers,
        "days": days,
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak_kib / 1024),
        "warehouse_mib": round(size_mib),
        "interactions_per_customer": round(counts["interactions"] / max(counts["customers"], 1), 1),
        "rows": counts,
    }


def _parse_size(text: str) -> tuple[int, int]:
    try:
        customers, days = text.lower().split("x")
        return int(customers), int(days)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size {text!r}: write CUSTOMERSxDAYS, e.g. 100000x180") from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=_parse_size, default=[(100_000, 180)], help="CUSTOMERSxDAYS, e.g. 1000000x180")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the warehouses under this folder.")
    parser.add_argument("--child", nargs=3, metavar=("CUSTOMERS", "DAYS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # measured in a fresh process so ru_maxrss is this size's own peak
        customers, days, folder = int(args.child[0]), int(args.child[1]), Path(args.child[2])
        print(json.dumps(run_one(customers, days, args.seed, folder)))
        return

    for customers, days in args.sizes:
        with tempfile.TemporaryDirectory(prefix="nextbest-bench-") as tmp:
            folder = (args.keep / f"{customers}x{days}") if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            out = subprocess.run(
                [sys.executable, __file__, "--seed", str(args.seed), "--child", str(customers), str(days), str(folder)],
                check=True, capture_output=True, text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
        rows = result.pop("rows")
        print(f"{customers:>9,} customers x {days} days: " + ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("customers", "days")))
        print("    rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
