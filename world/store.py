"""Writing the world into the warehouse (Arrow batches, never row by row) and reading it back."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

SCHEMA = "ground_truth"

GROUND_TRUTH_DDL: tuple[str, ...] = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.decision_truth (
  decision_id VARCHAR, customer_id BIGINT, p_contact DOUBLE, p_control DOUBLE, expected_revenue DOUBLE)""",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.seeded_defects (kind VARCHAR, customer_id BIGINT, detail VARCHAR)",
)

#: Contract tables the generator fills (``replace`` empties them first).
GENERATED_TABLES: tuple[str, ...] = ("customers", "interactions", "transactions", "life_events", "decisions", "responses")


def ensure_ground_truth(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``ground_truth`` schema and its fixed tables (idempotent)."""
    for ddl in GROUND_TRUTH_DDL:
        con.execute(ddl)


def clear(con: duckdb.DuckDBPyConnection) -> None:
    """Empty the generated contract tables and drop the ground truth."""
    for t in GENERATED_TABLES:
        con.execute(f"DELETE FROM {t}")
    con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def append(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: Sequence[str] | None = None) -> int:
    """Append ``frame`` to ``table`` by column name through one Arrow scan; returns rows written."""
    if frame.empty:
        return 0
    cols = list(columns or frame.columns)
    arrow = pa.Table.from_pandas(frame[cols], preserve_index=False)
    name = "_nextbest_world_batch"
    con.register(name, arrow)
    try:
        col_list = ", ".join(cols)
        con.execute(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM {name}")
    finally:
        con.unregister(name)
    return len(frame)


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Create or replace ``table`` with exactly ``frame``'s columns and rows."""
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    name = "_nextbest_world_table"
    con.register(name, arrow)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {name}")
    finally:
        con.unregister(name)
