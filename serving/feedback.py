"""Durable, idempotent recording of decision outcomes (``POST /feedback``).

An outcome is committed to ``responses`` before the service answers 202, so a
crash right after the answer loses nothing. The table's key (decision_id,
outcome) makes a repeated call a no-op, which is what lets campaign tools retry
blindly. The decision must exist: a decision the service made a moment ago may
still sit in the :class:`~nextbest.serving.decision_log.DecisionWriter` queue, so
that queue is flushed first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from nextbest.errors import NotFoundError
from nextbest.serving.connections import warehouse_connection
from nextbest.serving.decision_log import DecisionWriter


@dataclass(frozen=True)
class RecordedFeedback:
    """What :func:`record_feedback` did."""

    decision_id: str
    customer_id: int
    outcome: str
    #: False when the same (decision_id, outcome) had been recorded before.
    created: bool


def record_feedback(
    warehouse_path: Path,
    *,
    decision_id: str,
    outcome: str,
    ts: dt.datetime,
    revenue: float | None,
    writer: DecisionWriter | None = None,
    lock_timeout_s: float = 10.0,
) -> RecordedFeedback:
    """Commit one outcome of a logged decision to ``responses``.

    Parameters
    ----------
    warehouse_path
        The DuckDB warehouse file.
    decision_id, outcome, ts, revenue
        The ``responses`` row; ``ts`` is stored as naive UTC.
    writer
        The service's decision writer; flushed first when it still holds the decision.
    lock_timeout_s
        How long to wait for another process's lock on the warehouse.

    Returns
    -------
    RecordedFeedback

    Raises
    ------
    NotFoundError
        When no decision ``decision_id`` was ever logged.
    """
    if writer is not None and writer.is_pending(decision_id):
        writer.flush(timeout_s=lock_timeout_s)
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    row = pd.DataFrame({"decision_id": [decision_id], "ts": [ts], "outcome": [outcome], "revenue": [revenue]})
    with warehouse_connection(warehouse_path, timeout_s=lock_timeout_s) as con:
        recorded = insert_outcomes(con, row)
    return recorded[0]


def insert_outcomes(con: duckdb.DuckDBPyConnection, outcomes: pd.DataFrame) -> list[RecordedFeedback]:
    """Insert ``responses`` rows of logged decisions in one statement; the core of :func:`record_feedback`.

    Batch callers (the closed-loop simulator) record a day's outcomes with this
    function, so they store feedback exactly as ``POST /feedback`` does.

    Parameters
    ----------
    con
        Open warehouse connection.
    outcomes
        ``decision_id, ts, outcome, revenue`` rows (``ts`` naive UTC).

    Returns
    -------
    list of RecordedFeedback
        One per row, in order; ``created`` is false for a (decision_id, outcome) stored before.

    Raises
    ------
    NotFoundError
        When a decision_id was never logged (nothing is inserted then).
    """
    frame = outcomes.loc[:, ["decision_id", "ts", "outcome", "revenue"]].reset_index(drop=True)
    frame["revenue"] = frame["revenue"].astype(float)
    con.register("_nb_outcomes", frame)
    try:
        owners = con.execute(
            "SELECT o.decision_id, d.customer_id FROM (SELECT DISTINCT decision_id FROM _nb_outcomes) o "
            "LEFT JOIN decisions d USING (decision_id)"
        ).df()
        unknown = owners.loc[owners["customer_id"].isna(), "decision_id"].tolist()
        if unknown:
            raise NotFoundError(
                f"decision_id {unknown[0]!r} is unknown: send the decision_id returned by /rank or /rank_batch"
            )
        inserted = con.execute(
            "INSERT OR IGNORE INTO responses (decision_id, ts, outcome, revenue) "
            "SELECT decision_id, ts, outcome, revenue FROM _nb_outcomes RETURNING decision_id, outcome"
        ).df()
    finally:
        con.unregister("_nb_outcomes")
    owner = dict(zip(owners["decision_id"], owners["customer_id"].astype("int64"), strict=True))
    created = set(zip(inserted["decision_id"], inserted["outcome"], strict=True))
    return [
        RecordedFeedback(decision_id=d, customer_id=int(owner[d]), outcome=o, created=(d, o) in created)
        for d, o in zip(frame["decision_id"], frame["outcome"], strict=True)
    ]
