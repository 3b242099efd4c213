"""Short-lived warehouse connections that wait out other processes' locks.

DuckDB lets one process at a time open a database file for writing. The
scoring service runs for days next to the CLI and the simulator, so it never
keeps the warehouse open: every write batch opens a connection, commits and
closes it, and a lock held by another process is retried with a short backoff
instead of failing the request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


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
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            # No DDL here (unlike warehouse.db.connect): concurrent CREATE IF NOT EXISTS
            # from the writer and request threads would conflict. Runtime start-up
            # creates the tables once.
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    f"warehouse {path} stayed locked by another process for {timeout_s:g} s; "
                    "finish or stop the other writer (CLI, simulator) and retry"
                ) from exc
            # Jitter keeps several service workers from retrying in lock-step.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)
    try:
        yield con
    finally:
        con.close()
