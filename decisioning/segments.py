"""Marketers' segments: membership, profile and export.

Segments are named rules (``policy.segments``) in the eligibility rule language.
An export for a channel lists only customers reachable on it (consent and a
valid contact), and counts those left out by reason, so a list handed to an
e-mail tool can never contain someone who may not be e-mailed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.decisioning.candidates import truthy
from nextbest.decisioning.ruleset import RuleSet
from nextbest.errors import BadInputError

#: Value tiers from ``clv_12m``: population tertiles.
VALUE_TIERS: tuple[str, ...] = ("low", "medium", "high")


def members(features: pd.DataFrame, rules: RuleSet, name: str) -> np.ndarray:
    """Boolean mask of the customers of ``features`` in segment ``name``."""
    return rules.segment(name).evaluate(features)


def value_tier(features: pd.DataFrame) -> pd.Series:
    """``low | medium | high`` by tertile of ``clv_12m`` over the given population ('unknown' if null)."""
    clv = pd.to_numeric(features["clv_12m"], errors="coerce") if "clv_12m" in features.columns else pd.Series(np.nan, index=features.index)
    known = clv.dropna()
    if known.empty:
        return pd.Series("unknown", index=features.index)
    edges = np.quantile(known, [1 / 3, 2 / 3])
    tier = np.asarray(VALUE_TIERS, dtype=object)[np.searchsorted(edges, clv.fillna(0).to_numpy(), side="right")]
    return pd.Series(np.where(clv.isna(), "unknown", tier), index=features.index)


def profile(features: pd.DataFrame, mask: np.ndarray, config: NextbestConfig) -> dict[str, object]:
    """Size and profile of the customers selected by ``mask``.

    Returns
    -------
    dict
        ``size``, ``share`` of the population, ``value_tier`` and ``journey_stage``
        distributions (shares), and per channel the share with ``consent`` and
        the share ``reachable``.
    """
    size = int(mask.sum())
    tiers = value_tier(features)[mask]
    stages = features.loc[mask, "journey_stage"] if "journey_stage" in features.columns else pd.Series(dtype=object)
    consent, reachable = {}, {}
    for ch in config.channels.channels:
        if ch.personal:
            consent[ch.id] = _share(truthy(features, f"consent_{ch.id}")[mask])
            reachable[ch.id] = _share(truthy(features, f"reachable_{ch.id}")[mask] & truthy(features, f"consent_{ch.id}")[mask])
        else:
            consent[ch.id] = reachable[ch.id] = 1.0 if size else 0.0
    return {
        "size": size,
        "share": size / len(features) if len(features) else 0.0,
        "value_tier": _shares(tiers, (*VALUE_TIERS, "unknown")),
        "journey_stage": _shares(stages, JOURNEY_STAGES),
        "consent": consent,
        "reachable": reachable,
    }


def _share(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else 0.0


def _shares(values: pd.Series, levels: tuple[str, ...]) -> dict[str, float]:
    counts = values.value_counts()
    total = max(len(values), 1)
    return {lvl: float(counts.get(lvl, 0)) / total for lvl in levels if counts.get(lvl, 0) or lvl != "unknown"}


@dataclass(frozen=True)
class Export:
    """An export: the customers written and the ones left out, by reason."""

    customers: pd.DataFrame
    left_out: dict[str, int]


def export(features: pd.DataFrame, rules: RuleSet, name: str, channel: str, config: NextbestConfig) -> Export:
    """Customers of segment ``name`` reachable on ``channel``.

    Parameters
    ----------
    features
        Customer features (``consent_<channel>``, ``reachable_<channel>`` and the rule's inputs).
    rules
        The configuration's rules.
    name
        Segment name.
    channel
        Channel id the list is for.
    config
        Configuration (channels).

    Returns
    -------
    Export
        ``customers`` has only ``customer_id`` (no personal data); ``left_out``
        counts segment members dropped for ``no_consent`` and ``unreachable``
        (consent but no valid contact).

    Raises
    ------
    BadInputError
        When ``channel`` is not configured.
    """
    ids = [c.id for c in config.channels.channels]
    if channel not in ids:
        raise BadInputError(f"--channel {channel!r} is not a configured channel; use one of {ids}")
    mask = members(features, rules, name)
    if config.channel(channel).personal:
        consent = truthy(features, f"consent_{channel}")
        reachable = truthy(features, f"reachable_{channel}") & consent
    else:
        consent = reachable = np.ones(len(features), dtype=bool)
    keep = mask & reachable
    left_out = {"no_consent": int((mask & ~consent).sum()), "unreachable": int((mask & consent & ~reachable).sum())}
    out = features.loc[keep, ["customer_id"]].sort_values("customer_id", ignore_index=True)
    return Export(out, left_out)


def write_export(result: Export, path: Path) -> Path:
    """Write the customer ids to ``path`` (``.csv`` or ``.parquet``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        result.customers.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        result.customers.to_csv(path, index=False)
    else:
        raise BadInputError(f"--output {path}: use a .csv or .parquet file name")
    return path
