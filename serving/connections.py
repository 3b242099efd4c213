"""Short-lived warehouse connections that wait out other processes' locks.

DuckDB lets one process at a time open a database file for writing. The
scoring service runs for days next to the batch jobs, so it never keeps the
warehouse open: it reads it (read-only) when it loads a serving state, waiting
while a batch job holds the file, and writes only the live store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from nextbest.warehouse.db import open_waiting


log = logging.getLogger(__name__)

# DuckDB reports another process's lock as an IOException with one of these texts.
_LOCK_MARKERS = ("could not set lock", "conflicting lock", "resource temporarily unavailable")


class WarehouseBusyError(RuntimeError):
    """The warehouse stayed locked by another process for the whole timeout."""


def is_lock_error(exc: BaseException) -> bool:
    """Whether ``exc`` means another process holds the warehouse file."""
    return isinstance(exc, duckdb.Error) and any(m in str(exc).lower() for m in _LOCK_MARKERS)


@contextmanager
def warehouse_connection(
    path: Path, *, read_only: bool = False, timeout_s: float = 10.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, retrying while another process holds the lock.

    Parameters
    ----------
    path
        The warehouse file.
    read_only
        Open without write access (no DDL, no lock conflict with other readers).
    timeout_s
        Give up after this many seconds of lock conflicts.

    Yields
    ------
    duckdb.DuckDBPyConnection
        Closed when the block exits, which releases the file for other processes.

    Raises
    ------
    WarehouseBusyError
        When the lock was not released within ``timeout_s``.
    """
    try:
        # No DDL here (unlike warehouse.db.connect): the service only reads the warehouse.
        con = open_waiting(path, read_only, timeout_s)
    except duckdb.Error as exc:
        if not is_lock_error(exc):
            raise
        raise WarehouseBusyError(
            f"warehouse {path} stayed locked by another process for {timeout_s:g} s; "
            "a batch job holds it: retry when it has finished"
        ) from exc
    try:
        yield con
    finally:
        con.close()
