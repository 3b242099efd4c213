"""The SQL engines a batch job runs on: the DuckDB warehouse, or Spark over a Parquet lake.

Feature and training-set code is written once, in DuckDB's dialect, against
:class:`SqlEngine`. :class:`DuckDBEngine` runs it as written;
``nextbest.spark.features.SparkEngine`` transpiles it for Spark SQL. Tables are
named as in the warehouse (``customers``, ``features.customer_snapshot``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import duckdb
import pandas as pd


@runtime_checkable
class SqlEngine(Protocol):
    """What the feature pipeline and the training set need of an engine."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a DuckDB-dialect statement with ``$name`` parameters; the result on the driver."""

    def has_table(self, qualified: str) -> bool:
        """Whether ``[schema.]table`` exists."""

    def columns(self, qualified: str) -> list[str]:
        """Column names of ``[schema.]table`` in order (empty when it does not exist)."""


class DuckDBEngine:
    """:class:`SqlEngine` over a warehouse connection (the connection stays the caller's)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, dict(params) if params else None).df()

    def has_table(self, qualified: str) -> bool:
        return bool(self.columns(qualified))

    def columns(self, qualified: str) -> list[str]:
        schema, _, name = qualified.rpartition(".")
        rows = self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema or "main", name],
        ).fetchall()
        return [r[0] for r in rows]


def as_engine(con: duckdb.DuckDBPyConnection | SqlEngine) -> SqlEngine:
    """``con`` as an engine: a DuckDB connection is wrapped, an engine returned as is."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return DuckDBEngine(con)
    return con
