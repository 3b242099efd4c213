"""Warehouse summary: what is in it, and how past campaigns did.

:func:`summarise` returns plain dicts/lists (JSON-ready) so the command line,
reports and notebooks all show the same figures.
"""

from __future__ import annotations

from typing import Any

import duckdb
from nextbest.warehouse.quality import channel_coverage

from nextbest.config import NextbestConfig

#: Fact tables whose ``ts`` range the summary shows.
DATED_TABLES: tuple[str, ...] = ("interactions", "transactions", "life_events", "decisions", "responses")


def summarise(con: duckdb.DuckDBPyConnection, config: NextbestConfig) -> dict[str, Any]:
    """Row counts, consent shares, interaction vocabulary, date ranges and campaign response rates.

    Returns
    -------
    dict
        ``tables`` ("schema.table" -> rows, every base table of the warehouse),
        ``consent`` (channel -> share with consent), ``interaction_types``
        (distinct types, and per family), ``date_range`` (table -> first/last ts)
        and ``campaigns`` (one row per experiment and arm, see :func:`campaign_rates`).
    """
    return {
        "tables": table_counts(con),
        "consent": {c.channel: round(c.consent, 6) for c in channel_coverage(con, config)},
        "interaction_types": interaction_types(con),
        "date_range": date_ranges(con),
        "campaigns": campaign_rates(con),
    }


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of every base table in the warehouse, as ``schema.table``."""
    names = con.execute(
        """
        SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_catalog = current_database()
        ORDER BY table_schema <> 'main', table_schema, table_name
        """
    ).fetchall()
    if not names:
        return {}
    union = " UNION ALL ".join(f'SELECT \'{s}.{t}\' AS name, count(*) AS n FROM "{s}"."{t}"' for s, t in names)
    counts = dict(con.execute(union).fetchall())
    return {f"{s}.{t}": int(counts[f"{s}.{t}"]) for s, t in names}


def interaction_types(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Number of distinct interaction types, overall and per family (text before the first dot)."""
    rows = con.execute(
        """
        SELECT split_part(type, '.', 1) AS family, count(DISTINCT type) AS types, count(*) AS events
        FROM interactions GROUP BY family ORDER BY family
        """
    ).fetchall()
    total = con.execute("SELECT count(DISTINCT type) FROM interactions").fetchone()[0]
    return {"distinct": int(total), "families": {f: {"types": int(t), "events": int(e)} for f, t, e in rows}}


def date_ranges(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """First and last ``ts`` of each dated table (None for an empty table)."""
    union = " UNION ALL ".join(f"SELECT '{t}', min(ts), max(ts) FROM {t}" for t in DATED_TABLES)
    return {t: {"first": first, "last": last} for t, first, last in con.execute(union).fetchall()}


def campaign_rates(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Response rates of the logged decisions by experiment and arm.

    A decision counts as opened / clicked / converted when it has a response
    with that outcome; ``revenue_per_decision`` divides conversion revenue by
    all decisions of the arm (control arms included, so arms compare directly).
    """
    cursor = con.execute(
        """
        WITH r AS (
            SELECT decision_id,
                   bool_or(outcome = 'open') AS opened,
                   bool_or(outcome = 'click') AS clicked,
                   bool_or(outcome = 'conversion') AS converted,
                   bool_or(outcome IN ('complaint', 'unsubscribe')) AS negative,
                   sum(CASE WHEN outcome = 'conversion' THEN coalesce(revenue, 0) ELSE 0 END) AS revenue
            FROM responses GROUP BY decision_id
        )
        SELECT coalesce(d.experiment, '(none)') AS experiment,
               coalesce(d.arm, '(none)') AS arm,
               count(*) AS decisions,
               avg(coalesce(d.contacted, false)::DOUBLE) AS contacted_share,
               avg(coalesce(r.opened, false)::DOUBLE) AS open_rate,
               avg(coalesce(r.clicked, false)::DOUBLE) AS click_rate,
               avg(coalesce(r.converted, false)::DOUBLE) AS conversion_rate,
               avg(coalesce(r.negative, false)::DOUBLE) AS complaint_unsubscribe_rate,
               coalesce(sum(r.revenue), 0) / count(*) AS revenue_per_decision,
               min(d.ts) AS first, max(d.ts) AS last
        FROM decisions d LEFT JOIN r USING (decision_id)
        GROUP BY ALL ORDER BY experiment, arm
        """
    )
    names = [d[0] for d in cursor.description]
    return [
        {k: (round(v, 6) if isinstance(v, float) else v) for k, v in zip(names, row, strict=True)}
        for row in cursor.fetchall()
    ]
