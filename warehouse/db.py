"""Opening the warehouse (a DuckDB file) and creating its tables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from nextbest.errors import BadInputError
from nextbest.warehouse.schema import TABLES


#: Environment variable that caps DuckDB's memory on every warehouse connection ("4GB").
MEMORY_ENV = "NEXTBEST_DUCKDB_MEMORY"


def connect(path: Path | str, *, read_only: bool = False, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file and make sure every contract table exists.

    ``read_only`` connections skip DDL (they cannot run it) and let several
    processes read the same file, e.g. the scoring service next to a notebook.
    ``memory_limit`` (e.g. ``"2GB"``) caps DuckDB's buffers; beyond it, joins and
    sorts spill to ``<warehouse>.tmp``. :data:`MEMORY_ENV`, when set, overrides it.
    Without either, DuckDB takes up to 80 % of the machine's memory.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    from_env = os.environ.get(MEMORY_ENV)
    limit = from_env or memory_limit
    if limit:
        try:
            con.execute(f"SET memory_limit = '{limit}'")
        except duckdb.Error as exc:
            con.close()
            source = MEMORY_ENV if from_env else "memory_limit"
            raise BadInputError(f"{source}: {limit!r} is not a memory size; use e.g. 2GB or 512MB") from exc
        con.execute(f"SET temp_directory = '{path}.tmp'")
    if not read_only:
        ensure_schema(con)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the contract tables if absent (idempotent)."""
    for table in TABLES.values():
        con.execute(table.ddl())


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing block: commit on success, roll back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")
