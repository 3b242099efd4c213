"""The batched decision writer against real DuckDB files, including another process's lock."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nextbest.serving.connections import WarehouseBusyError, warehouse_connection
from nextbest.serving.decision_log import DecisionWriter
from nextbest.warehouse.db import connect


def rows(*ids: str) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "decision_id": list(ids),
            "customer_id": range(1, n + 1),
            "ts": [dt.datetime(2024, 5, 1, 9)] * n,
            "offer_id": ["sports_gear"] * n,
            "channel": ["email"] * n,
            "arm": ["champion"] * n,
            "contacted": [True] * n,
        }
    )


def count(path: Path) -> int:
    # Read-write like the writer: DuckDB refuses mixed configurations within one process.
    with warehouse_connection(path) as con:
        return int(con.execute("SELECT count(*) FROM decisions").fetchone()[0])


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    connect(path).close()
    return path


def test_rows_are_written_in_batches_and_pending_until_then(warehouse: Path) -> None:
    writer = DecisionWriter(warehouse, interval_s=30).start()  # only flush() writes
    writer.submit(rows("a", "b"))
    writer.submit(rows("c"))
    assert writer.is_pending("a") and writer.queued_rows == 3
    assert count(warehouse) == 0
    assert writer.flush(timeout_s=10)
    assert not writer.is_pending("a")
    assert count(warehouse) == 3
    writer.close()


def test_max_rows_triggers_an_early_write(warehouse: Path) -> None:
    writer = DecisionWriter(warehouse, interval_s=30, max_rows=2).start()
    writer.submit(rows("a", "b"))
    deadline = time.monotonic() + 30  # generous: the shared test machine can be very busy
    while count(warehouse) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(warehouse) == 2
    writer.close()


def test_close_writes_everything_queued(warehouse: Path) -> None:
    writer = DecisionWriter(warehouse, interval_s=30).start()
    writer.submit(rows(*(f"d{i}" for i in range(500))))
    writer.close()
    assert count(warehouse) == 500
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(rows("late"))


def test_a_lock_held_by_another_process_delays_but_loses_nothing(warehouse: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); print('held', flush=True); time.sleep(1.5)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    writer = DecisionWriter(warehouse, interval_s=0.05, lock_timeout_s=0.2).start()
    writer.submit(rows("x", "y"))
    assert writer.flush(timeout_s=20)
    holder.wait(10)
    assert count(warehouse) == 2
    assert writer.rows_failed == 0
    writer.close()


def test_connection_gives_up_after_the_timeout(warehouse: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); print('held', flush=True); time.sleep(3)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(WarehouseBusyError, match="stayed locked by another process"):
        with warehouse_connection(warehouse, timeout_s=0.3):
            pass
    holder.kill()
    holder.wait()


def test_submit_rejects_rows_without_keys(warehouse: Path) -> None:
    writer = DecisionWriter(warehouse)
    with pytest.raises(ValueError, match=r"lack required column\(s\) \['ts'\]"):
        writer.submit(rows("a").drop(columns="ts"))
