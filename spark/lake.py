"""The Parquet lake: the exchange format between the warehouse and Spark.

Layout under the lake folder ``DIR``::

    DIR/<table>/part-00000.parquet                       every table of the warehouse's main schema
                                                         (customers, interactions, transactions,
                                                         life_events, decisions, responses,
                                                         consent_changes, ...)
    DIR/features/customer_snapshot/as_of-<T>.parquet     one file per snapshot, with its as_of column
    DIR/features/offer_history/as_of-<T>.parquet
    DIR/features/manifest/as_of-<T>.parquet

Columns and types are the data contract's (``docs/data-model.md``); timestamps
carry no zone (microseconds). A Spark user's own lake works when it has this
layout: any number of Parquet files per table folder. Only :func:`export_lake`
and the writers here touch files; reading goes through Spark
(:mod:`nextbest.spark.features`) or DuckDB's ``read_parquet``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.errors import BadInputError

FEATURES = "features"
#: Main-schema tables that are bookkeeping, not data: the sync's marks.
INTERNAL_TABLES: frozenset[str] = frozenset({"live_sync"})
#: Feature tables written per snapshot (the warehouse's ``features.*`` tables).
FEATURE_TABLES: tuple[str, ...] = ("customer_snapshot", "offer_history", "manifest")
PART = "part-00000.parquet"


def table_dir(lake: Path, table: str) -> Path:
    """Folder of a main-schema table (``customers``) or a feature table (``features.offer_history``)."""
    schema, _, name = table.rpartition(".")
    return lake / schema / name if schema and schema != "main" else lake / name


def as_of_file(lake: Path, table: str, as_of: pd.Timestamp) -> Path:
    """The file of one snapshot of a feature table (``table`` like ``features.customer_snapshot``)."""
    return table_dir(lake, table) / f"as_of-{pd.Timestamp(as_of).strftime('%Y-%m-%dT%H%M%S')}.parquet"


def lake_tables(lake: Path) -> dict[str, Path]:
    """Tables present in the lake, by warehouse name (``customers``, ``features.customer_snapshot``)."""
    if not lake.is_dir():
        raise BadInputError(f"--lake {lake}: no such folder; write one with `nextbest data export --output {lake}`")
    found: dict[str, Path] = {}
    for folder in sorted(p for p in lake.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if folder.name == FEATURES:
            for sub in sorted(p for p in folder.iterdir() if p.is_dir() and _has_parquet(p)):
                found[f"{FEATURES}.{sub.name}"] = sub
        elif _has_parquet(folder):
            found[folder.name] = folder
    return found


def _has_parquet(folder: Path) -> bool:
    return any(folder.glob("*.parquet"))


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The warehouse's main-schema tables that the lake holds (all but bookkeeping)."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND database_name = current_database() "
        "ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in INTERNAL_TABLES]


def feature_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The warehouse's ``features.*`` tables."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = ? AND database_name = current_database() "
        "ORDER BY table_name", [FEATURES],
    ).fetchall()
    return [f"{FEATURES}.{r[0]}" for r in rows]


@contextmanager
def staged(lake: Path) -> Iterator[Path]:
    """A staging folder inside ``lake``, removed afterwards whatever happens."""
    stage = lake / f".staging-{uuid.uuid4().hex[:12]}"
    stage.mkdir(parents=True)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage_dir: Path, target: Path) -> None:
    """Replace ``target`` by ``stage_dir`` (renames within one file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    stage_dir.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def export_lake(con: duckdb.DuckDBPyConnection, lake: Path) -> dict[str, int]:
    """Write every main-schema table and every ``features.*`` table of the warehouse to ``lake``.

    All tables are written to a staging folder first and moved into place only
    when every one is complete, so a failed export leaves the lake as it was.
    Feature tables are written one file per ``as_of``.

    Returns
    -------
    dict
        Rows written per table (warehouse names).
    """
    if lake.exists() and not lake.is_dir():
        raise BadInputError(f"--output {lake} is a file; name a folder for the lake")
    lake.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with staged(lake) as stage:
        tables = [*main_tables(con), *feature_tables(con)]
        for table in tables:
            folder = table_dir(stage, table)
            folder.mkdir(parents=True)
            columns = [r[0] for r in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
            if table.startswith(f"{FEATURES}.") and "as_of" in columns:
                stamps = [r[0] for r in con.execute(f"SELECT DISTINCT as_of FROM {table} ORDER BY 1").fetchall()]
                for when in stamps:
                    path = as_of_file(stage, table, pd.Timestamp(when))
                    con.execute(
                        f"COPY (SELECT * FROM {table} WHERE as_of = CAST({_sql_string(str(when))} AS TIMESTAMP)) "
                        f"TO {_sql_string(str(path))} (FORMAT parquet)"
                    )
            else:
                con.execute(f"COPY (SELECT * FROM {table}) TO {_sql_string(str(folder / PART))} (FORMAT parquet)")
            counts[table] = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        for table in tables:
            _swap_in(table_dir(stage, table), table_dir(lake, table))
    return counts


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` atomically (a temporary file renamed), timestamps in microseconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    try:
        pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=True)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_snapshot_files(lake: Path, as_of: pd.Timestamp, features: pd.DataFrame, offer_history: pd.DataFrame,
                         manifest: pd.DataFrame) -> list[Path]:
    """Replace the lake's snapshot ``as_of``: customer features, offer history and manifest (one file each)."""
    paths = []
    for name, frame in (("customer_snapshot", features), ("offer_history", offer_history), ("manifest", manifest)):
        path = as_of_file(lake, f"{FEATURES}.{name}", as_of)
        stamped = pd.concat([pd.DataFrame({"as_of": pd.Timestamp(as_of)}, index=frame.index), frame], axis=1)
        write_frame(path, stamped)
        paths.append(path)
    return paths
