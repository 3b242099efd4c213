"""Benchmark `nextbest data import`: 1M interactions from CSV and from Parquet.

Writes a customers file and two 1M-row interactions files (the second a later
period) in both formats to a temporary folder, then imports each format into a
fresh warehouse in its own process (so peak RSS is per format) and prints wall
time, rows/s and peak RSS: the first file into an empty table, the second into
a table already holding the first (its duplicate check then joins 1M x 1M).

Usage::

    .venv/bin/python benchmarks/import.py [--rows 1000000] [--customers 50000]
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

import duckdb

from nextbest import logfile


def make_files(folder: Path, rows: int, customers: int) -> dict[str, Path]:
    """Customers CSV plus interactions as CSV and Parquet, generated in DuckDB."""
    con = duckdb.connect()
    con.execute(
        f"""
        CREATE TABLE interactions AS
        SELECT ((hash(i) % {customers}) + 1)::BIGINT AS customer_id,
               TIMESTAMP '2024-01-01' + to_seconds((hash(i * 7) % (365 * 86400))::BIGINT) AS ts,
               ['web.view.category.shoes', 'web.search', 'app.open', 'email.open', 'email.click',
                'store.visit', 'service.call'][((hash(i * 13) % 7) + 1)::BIGINT] AS type,
               CASE WHEN i % 5 = 0 THEN 'email' END AS channel,
               CASE WHEN i % 5 = 0 THEN 'fashion_sale' END AS offer_id,
               CASE WHEN i % 3 = 0 THEN (hash(i) % 600)::DOUBLE END AS value
        FROM range({rows}) t(i)
        """
    )
    files = {"customers": folder / "customers.csv"}
    con.execute(f"COPY (SELECT range + 1 AS customer_id FROM range({customers})) TO '{files['customers']}' (HEADER)")
    later = "SELECT * REPLACE (ts + INTERVAL 366 DAY AS ts) FROM interactions"
    for fmt, option in (("csv", "HEADER"), ("parquet", "FORMAT parquet")):
        files[fmt] = folder / f"interactions.{fmt}"
        files[f"{fmt}_later"] = folder / f"interactions_later.{fmt}"
        con.execute(f"COPY interactions TO '{files[fmt]}' ({option})")
        con.execute(f"COPY ({later}) TO '{files[f'{fmt}_later']}' ({option})")
    return files


def run_one(warehouse: Path, customers: Path, interactions: Path, later: Path) -> dict[str, float]:
    """Import into a fresh warehouse (this process); timings cover the interactions imports only."""
    from nextbest.warehouse.db import connect
    from nextbest.warehouse.importer import import_file

    from nextbest.config import load_config

    config = load_config()
    con = connect(warehouse)
    import_file(con, "customers", customers, config)
    started = time.perf_counter()
    result = import_file(con, "interactions", interactions, config)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    import_file(con, "interactions", later, config)
    seconds_later = time.perf_counter() - started
    con.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"rows": result.rows, "seconds": seconds, "seconds_later": seconds_later, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*(Path(p) for p in args.child))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_files(folder, args.rows, args.customers)
        print(f"import benchmark: {args.rows:,} interactions, {args.customers:,} customers")
        for fmt in ("csv", "parquet"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(folder / f"{fmt}.duckdb"),
                    str(files["customers"]),
                    str(files[fmt]),
                    str(files[f"{fmt}_later"]),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            for label, seconds in (("empty table", r["seconds"]), ("onto 1M rows", r["seconds_later"])):
                print(
                    f"  {fmt:8s} {label:13s} {r['rows']:>10,} rows  {seconds:6.2f} s  "
                    f"{r['rows'] / seconds:>10,.0f} rows/s"
                )
            print(f"  {fmt:8s} peak RSS {r['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
