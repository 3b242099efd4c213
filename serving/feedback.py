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
    with warehouse_connection(warehouse_path, timeout_s=lock_timeout_s) as con:
        found = con.execute("SELECT customer_id FROM decisions WHERE decision_id = ?", [decision_id]).fetchone()
        if found is None:
            raise NotFoundError(
                f"decision_id {decision_id!r} is unknown: send the decision_id returned by /rank or /rank_batch"
            )
        inserted = con.execute(
            "INSERT OR IGNORE INTO responses (decision_id, ts, outcome, revenue) VALUES (?, ?, ?, ?) RETURNING 1",
            [decision_id, ts, outcome, revenue],
        ).fetchall()
    return RecordedFeedback(decision_id=decision_id, customer_id=int(found[0]), outcome=outcome, created=bool(inserted))
