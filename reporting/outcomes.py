"""The decision log joined with its outcomes: one row per decision.

Every report starts here. A decision's outcomes are the ``responses`` rows that
answer it within ``training.response_window_days`` (the same window that labels
the models); a decision whose window has not closed yet by the end of the data
is *immature* and left out, because its conversions are still to come.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError

#: Outcomes that count as a (positive) response.
POSITIVE_OUTCOMES: tuple[str, ...] = ("open", "click", "visit", "conversion")

#: Columns of :func:`load_outcomes`.
OUTCOME_COLUMNS: tuple[str, ...] = (
    "decision_id", "customer_id", "ts", "offer_id", "channel", "arm", "experiment", "propensity",
    "model_version", "contacted", "responded", "converted", "revenue", "complained", "unsubscribed",
)


def load_outcomes(
    con: duckdb.DuckDBPyConnection,
    config: NextbestConfig,
    *,
    experiment: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    mature_only: bool = True,
) -> pd.DataFrame:
    """Decisions in ``[start, end)`` with their outcomes inside the response window.

    Parameters
    ----------
    con
        Open warehouse connection.
    config
        Supplies ``training.response_window_days``.
    experiment
        Only this experiment; ``None`` = all.
    start, end
        Decision-time bounds (``end`` exclusive); ``None`` = unbounded.
    mature_only
        Drop decisions whose response window runs past the last timestamp in the
        warehouse's decisions and responses.

    Returns
    -------
    DataFrame
        :data:`OUTCOME_COLUMNS`; ``responded``, ``converted``, ``complained``,
        ``unsubscribed`` are 0/1 integers, ``revenue`` is conversion revenue (0 if none),
        ``arm`` and ``experiment`` are never null (``'unassigned'`` / ``'none'``).
        ``attrs["immature"]`` holds the number of decisions left out as immature.

    Raises
    ------
    BadInputError
        If ``start`` is not before ``end`` or ``experiment`` is not in the log.
    """
    if start is not None and end is not None and start >= end:
        raise BadInputError(f"--from {start:%Y-%m-%d} is not before --to {end:%Y-%m-%d}; swap or widen them")
    if experiment is not None:
        known = [r[0] for r in con.execute("SELECT DISTINCT experiment FROM decisions ORDER BY 1").fetchall()]
        if experiment not in known:
            raise BadInputError(
                f"experiment {experiment!r} is not in the decisions table; known experiments: "
                f"{', '.join(str(k) for k in known) or 'none (the log is empty)'}"
            )
    window = int(config.training.response_window_days)
    frame = con.execute(
        f"""
        WITH horizon AS (
            SELECT greatest((SELECT max(ts) FROM decisions), coalesce((SELECT max(ts) FROM responses),
                            (SELECT max(ts) FROM decisions))) AS horizon_ts
        ),
        d AS (
            SELECT d.*, (d.ts + INTERVAL {window} DAY) <= (SELECT horizon_ts FROM horizon) AS mature
            FROM decisions d
            WHERE ($experiment IS NULL OR d.experiment = $experiment)
              AND ($start IS NULL OR d.ts >= $start)
              AND ($end IS NULL OR d.ts < $end)
        ),
        r AS (
            SELECT r.decision_id,
                   max((r.outcome IN {POSITIVE_OUTCOMES})::INTEGER) AS responded,
                   max((r.outcome = 'conversion')::INTEGER) AS converted,
                   sum(CASE WHEN r.outcome = 'conversion' THEN coalesce(r.revenue, 0) ELSE 0 END) AS revenue,
                   max((r.outcome = 'complaint')::INTEGER) AS complained,
                   max((r.outcome = 'unsubscribe')::INTEGER) AS unsubscribed
            FROM responses r JOIN d USING (decision_id)
            WHERE r.ts >= d.ts AND r.ts < d.ts + INTERVAL {window} DAY
            GROUP BY r.decision_id
        )
        SELECT d.decision_id, d.customer_id, d.ts, d.offer_id, d.channel,
               coalesce(d.arm, 'unassigned') AS arm, coalesce(d.experiment, 'none') AS experiment,
               d.propensity, d.model_version, coalesce(d.contacted, false) AS contacted,
               coalesce(r.responded, 0) AS responded, coalesce(r.converted, 0) AS converted,
               coalesce(r.revenue, 0.0) AS revenue, coalesce(r.complained, 0) AS complained,
               coalesce(r.unsubscribed, 0) AS unsubscribed, d.mature
        FROM d LEFT JOIN r USING (decision_id)
        ORDER BY d.ts, d.decision_id
        """,
        {"experiment": experiment, "start": start, "end": end},
    ).df()
    immature = int((~frame["mature"].astype(bool)).sum()) if mature_only else 0
    if mature_only:
        frame = frame[frame["mature"].astype(bool)]
    frame = frame.drop(columns="mature").reset_index(drop=True)
    frame.attrs["immature"] = immature
    frame.attrs["response_window_days"] = window
    return frame
