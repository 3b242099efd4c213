"""Customer attributes reports cut by: journey stage, basket, age band, urbanity, value tier.

They come from the latest feature snapshot (``features.customer_snapshot``)
when one exists, else from the raw ``customers`` and ``transactions`` tables
(age from ``birth_date``, value from the last 365 days of spend); attributes
only the feature pipeline computes (journey stage, basket cluster, engagement)
are then absent, and the report says so.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig

#: Attributes uplift is reported by, in page order, with their display names.
SEGMENT_ATTRIBUTES: dict[str, str] = {
    "journey_stage": "Journey stage",
    "basket_cluster": "Basket cluster",
    "age_band": "Age band",
    "urbanity": "Urbanity",
    "value_tier": "Value tier",
}
#: Value tiers, lowest first: no spend, then spend quantiles 0-50-80-95-100%.
VALUE_TIERS: tuple[str, ...] = ("no purchases", "low", "medium", "high", "top")
_TIER_QUANTILES = (0.5, 0.8, 0.95)
#: Declared attribute types uplift is reported by (a number or date would need bands of its own).
_SEGMENTABLE_TYPES = ("category", "boolean")


def declared_segments(config: NextbestConfig) -> dict[str, str]:
    """The declared category and boolean attributes reports cut by (never personal ones), by display name."""
    return {a.name: a.name.replace("_", " ").capitalize() for a in config.features.attributes
            if not a.personal and a.type in _SEGMENTABLE_TYPES}


def report_segments(config: NextbestConfig) -> dict[str, str]:
    """Every attribute uplift is reported by: :data:`SEGMENT_ATTRIBUTES`, then the declared ones."""
    return {**SEGMENT_ATTRIBUTES, **declared_segments(config)}
UNKNOWN = "unknown"


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
        ).fetchone()[0]
    )


def age_bands(age: pd.Series, edges: tuple[int, ...]) -> pd.Series:
    """Ages to ordered band labels from ``features.age_bands`` edges, e.g. ``'25–34'``; null → ``'unknown'``."""
    bounds = [-np.inf, *edges, np.inf]
    labels = [f"<{edges[0]}"] + [f"{lo}–{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])] + [f"{edges[-1]}+"]
    bands = pd.cut(pd.to_numeric(age, errors="coerce"), bounds, right=False, labels=labels)
    return bands.cat.add_categories([UNKNOWN]).fillna(UNKNOWN)


def value_tiers(value: pd.Series) -> pd.Series:
    """Spend (or predicted value) to :data:`VALUE_TIERS` by quantiles of the positive values."""
    v = pd.to_numeric(value, errors="coerce").fillna(0.0)
    positive = v[v > 0]
    tiers = pd.Series(pd.Categorical([VALUE_TIERS[0]] * len(v), categories=VALUE_TIERS, ordered=True), index=v.index)
    if positive.empty:
        return tiers
    cuts = np.quantile(positive, _TIER_QUANTILES)
    idx = 1 + np.searchsorted(cuts, v[v > 0].to_numpy(), side="right")
    tiers[v > 0] = np.asarray(VALUE_TIERS)[idx]
    return tiers


def segment_attributes(con: duckdb.DuckDBPyConnection, config: NextbestConfig) -> tuple[pd.DataFrame, str]:
    """One row per customer with the report's segment attributes.

    Returns
    -------
    (DataFrame, str)
        ``customer_id`` + every :func:`report_segments` column that could be
        derived (categorical, ``'unknown'`` for missing values) + raw ``age``,
        ``gender``, ``region``, ``value`` and, from a snapshot, ``engagement_trend``;
        and a sentence naming the source (snapshot date or raw tables).
    """
    if _table_exists(con, "features", "customer_snapshot"):
        snap = con.execute(
            "SELECT * FROM features.customer_snapshot "
            "WHERE as_of = (SELECT max(as_of) FROM features.customer_snapshot)"
        ).df()
        if not snap.empty:
            as_of = pd.Timestamp(snap["as_of"].iloc[0])
            value_col = next((c for c in ("clv_12m", "monetary_365d") if c in snap), None)
            out = pd.DataFrame({"customer_id": snap["customer_id"]})
            for col in ("age", "gender", "region", "urbanity", "journey_stage", "basket_cluster",
                        "engagement_trend", "engagement_score", *declared_segments(config)):
                if col in snap:
                    out[col] = snap[col]
            out["value"] = snap[value_col] if value_col else 0.0
            source = f"feature snapshot of {as_of:%Y-%m-%d}" + (f" (value tier from {value_col})" if value_col else "")
            return _finish(out, config), source
    raw = con.execute(
        """
        WITH horizon AS (SELECT coalesce(max(ts), now()::TIMESTAMP) AS t FROM transactions)
        SELECT c.customer_id, c.gender, c.region, c.urbanity,
               date_diff('day', c.birth_date, (SELECT t FROM horizon)::DATE) / 365.25 AS age,
               coalesce(s.spend, 0) AS value
        FROM customers c
        LEFT JOIN (
            SELECT customer_id, sum(coalesce(amount, 0)) AS spend FROM transactions
            WHERE ts > (SELECT t FROM horizon) - INTERVAL 365 DAY GROUP BY customer_id
        ) s USING (customer_id)
        """
    ).df()
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = 'customers'"
    ).fetchall()}
    declared = [a for a in declared_segments(config) if a in have]
    if declared:
        extra = con.execute(f"SELECT customer_id, {', '.join(declared)} FROM customers").df()
        raw = raw.merge(extra, on="customer_id", how="left")
    return _finish(raw, config), "customers and transactions tables (no feature snapshot yet: run `nextbest features build`)"


def _finish(frame: pd.DataFrame, config: NextbestConfig) -> pd.DataFrame:
    out = frame.copy()
    out["age_band"] = age_bands(out["age"], config.features.age_bands) if "age" in out else UNKNOWN
    out["value_tier"] = value_tiers(out["value"])
    for col in ("urbanity", "journey_stage", "basket_cluster", "gender", "region", *declared_segments(config)):
        if col in out:
            out[col] = out[col].astype("string").fillna(UNKNOWN).astype(str)
    return out
