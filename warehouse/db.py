"""Opening the warehouse (a DuckDB file) and creating its tables."""

from __future__ import annotations

import os
import random
import time
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
    con = open_waiting(path, read_only)
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


#: How long opening the warehouse waits while another process holds it (seconds).
LOCK_WAIT_ENV = "NEXTBEST_LOCK_WAIT_S"


def open_waiting(path: Path | str, read_only: bool, wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, waiting while another process holds the file.

    DuckDB lets one process write a file, or several read it. A service reading a
    new snapshot, or another batch job, holds it for a moment: waiting (up to
    ``wait_s``, default :data:`LOCK_WAIT_ENV` or 120 s) beats failing the job.

    Raises
    ------
    duckdb.IOException
        The lock was still held after ``wait_s`` (or another I/O error).
    """
    if wait_s is None:
        raw = os.environ.get(LOCK_WAIT_ENV, "120")
        try:
            wait_s = float(raw)
        except ValueError as exc:
            raise BadInputError(f"{LOCK_WAIT_ENV}: {raw!r} is not a number of seconds; use e.g. 120") from exc
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.5)
            continue
        # DuckDB draws a progress bar on stdout for queries over 2 s when it takes the process
        # for an interactive one (a spawned multiprocessing worker is), which would land in
        # the figures a benchmark prints and on a user's screen.
        try:
            con.execute("SET enable_progress_bar = false")
        except duckdb.InvalidInputException:
            # A Jupyter kernel without ipywidgets: DuckDB refuses to touch the setting there
            # (it renders its bar as a widget in Jupyter); the notebook keeps DuckDB's default.
            pass
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
