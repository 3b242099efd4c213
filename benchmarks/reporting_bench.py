"""Time the A/B analysis and the uplift report on a generated world.

Run: ``.venv/bin/python benchmarks/reporting_bench.py [n_customers] [days]``
(default 20,000 customers, 180 days). Nothing is logged to MLflow.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from nextbest import logfile
from nextbest.reporting.ab_page import run_ab_analysis
from nextbest.reporting.uplift_report import build_uplift_report
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from nextbest.world.world import World


def main(n_customers: int = 20_000, days: int = 180) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.resolve(Path(tmp) / "ws")
        ws.init_config()
        con = connect(ws.warehouse_path)
        t = time.perf_counter()
        counts = World.create(n_customers, seed=1, config=ws.config()).write_history(con, days=days)
        con.close()
        print(f"world: {n_customers:,} customers, {days} days, {counts['decisions']:,} decisions "
              f"({time.perf_counter() - t:.1f} s)")
        t = time.perf_counter()
        run = run_ab_analysis(ws, log_to_mlflow=False)
        print(f"ab analyze: {time.perf_counter() - t:.1f} s; {run.analysis.verdicts[0]}")
        t = time.perf_counter()
        report = build_uplift_report(ws, log_to_mlflow=False)
        print(f"report uplift: {time.perf_counter() - t:.1f} s, {report.path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main(*(int(a) for a in sys.argv[1:3]))
