"""Offer history: per customer and offer, contacts and answers before the as-of time.

Only contacted decisions count as "shown" (control-arm rows record an offer the
customer never saw). Pairs without history are absent; :func:`attach_offer_history`
fills the registry defaults when joining candidates.
"""

from __future__ import annotations

import pandas as pd
from nextbest.features.pit import pit_ctes
from nextbest.features.query import INLINE, literal
from nextbest.features.registry import (
    OFFER_SHOWN_WINDOWS,
    POSITIVE_OUTCOMES,
    feature_defs,
    offer_history_features,
)

from nextbest.config import NextbestConfig


def offer_history_sql(config: NextbestConfig, *, filtered: bool) -> str:
    """Statement returning ``customer_id, offer_id`` + the offer-history features as of ``$as_of``."""
    ctes = {name: sql for name, sql in pit_ctes(config, filtered=filtered)}
    needed = ("pit_decisions", "pit_responses")
    positive = ", ".join(literal(o) for o in POSITIVE_OUTCOMES)
    shown = ", ".join(f"count(*) FILTER (WHERE d.age_days <= {w}) AS shown_{w}d" for w in OFFER_SHOWN_WINDOWS)
    return (
        "WITH " + ", ".join(f"{n} AS {INLINE} ({ctes[n]})" for n in needed) + ", "
        f"answered AS (SELECT decision_id, bool_or(outcome IN ({positive})) AS responded, "
        "bool_or(outcome = 'conversion') AS converted FROM pit_responses GROUP BY decision_id) "
        f"SELECT d.customer_id, d.offer_id, {shown}, min(d.age_days) AS days_since_shown, "
        "coalesce(bool_or(a.responded), false) AS responded_before, "
        "coalesce(bool_or(a.converted), false) AS converted_before "
        "FROM pit_decisions d LEFT JOIN answered a ON a.decision_id = d.decision_id "
        "WHERE d.contacted AND d.offer_id IS NOT NULL "
        "GROUP BY d.customer_id, d.offer_id ORDER BY d.customer_id, d.offer_id"
    )


def attach_offer_history(candidates: pd.DataFrame, history: pd.DataFrame, config: NextbestConfig) -> pd.DataFrame:
    """Left-join offer history onto candidate rows, filling defaults for pairs never shown.

    Parameters
    ----------
    candidates
        Rows with ``customer_id`` and ``offer_id``.
    history
        :func:`nextbest.features.pipeline.build_offer_history` output (or a store's).

    Returns
    -------
    DataFrame
        ``candidates`` (same index and order) with the offer-history columns.
    """
    defs = offer_history_features(feature_defs(config))
    cols = ["customer_id", "offer_id", *(d.name for d in defs)]
    merged = candidates.drop(columns=[d.name for d in defs if d.name in candidates.columns]).merge(
        history[cols], on=["customer_id", "offer_id"], how="left", sort=False
    )
    merged.index = candidates.index
    for d in defs:
        if d.default is not None:
            merged[d.name] = merged[d.name].fillna(d.default).astype("int64" if d.dtype == "int" else d.dtype)
    return merged
