"""Incremental effects of one group of arms over another, overall or per segment.

The estimand is the average effect *per treated decision*: the treated arms'
rate minus the baseline arm's rate, stratified by experiment (arm shares differ
between experiments, so pooling them would mix populations) and weighted by
each experiment's treated decisions. Multiplying by the number of treated
decisions gives the incremental conversions or revenue the treatment caused.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from nextbest.errors import BadInputError
from nextbest.reporting.stats import normal_interval, ratio_moments

#: Outcome metrics (columns of the outcomes frame) and how reports name them.
METRICS: dict[str, str] = {"converted": "conversion", "revenue": "revenue", "responded": "response"}


def ipw_weights(frame: pd.DataFrame) -> pd.Series:
    """``1 / propensity`` where the policy logged one, else 1.

    Within an offer or channel, customers whom the policy picked that action for
    with a low probability stand for many who did not get it; weighting them up
    makes a per-action comparison speak for every customer the action could
    have gone to, not only for the ones it happened to reach.
    """
    p = pd.to_numeric(frame["propensity"], errors="coerce")
    bad = p.notna() & ((p <= 0) | (p > 1))
    if bad.any():
        example = frame.loc[bad, "decision_id"].iloc[0]
        raise BadInputError(
            f"decisions.propensity must lie in (0, 1]; decision {example!r} has {float(p[bad].iloc[0])}. "
            "Fix the logging policy or set the propensity to null if it is unknown"
        )
    return (1.0 / p).fillna(1.0)


def compare_arms(
    frame: pd.DataFrame,
    *,
    baseline: str,
    treatment: Collection[str] | None = None,
    by: Sequence[str] = (),
    metrics: Sequence[str] = ("converted", "revenue"),
    weighted: bool = False,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Treatment-minus-baseline effects with normal-approximation intervals.

    Parameters
    ----------
    frame
        Outcomes (:func:`nextbest.reporting.outcomes.load_outcomes`) plus any ``by`` columns.
    baseline
        The arm compared against, usually ``'control'``.
    treatment
        Treated arms; ``None`` = every arm other than ``baseline``.
    by
        Segment columns; one output row per segment (none = one overall row).
    metrics
        Outcome columns to compare (keys of :data:`METRICS`).
    weighted
        Weight decisions by :func:`ipw_weights` (for per-offer / per-channel cuts).
    confidence
        Interval coverage.

    Returns
    -------
    DataFrame
        ``by`` + ``treated_decisions``, ``baseline_decisions``, ``treated_customers``,
        ``baseline_customers``, ``experiments`` and, per metric ``m``: ``m_treated``,
        ``m_baseline`` (rates per decision), ``m_uplift``, ``m_se``, ``m_lower``,
        ``m_upper``, ``m_p_value``, ``m_incremental`` (+ ``_lower`` / ``_upper``).
        Segments missing either group are dropped.
    """
    overall = not by
    by = list(by) or ["_all"]  # a constant segment keeps one code path for the overall row
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise BadInputError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    is_base = frame["arm"] == baseline
    is_treat = ~is_base if treatment is None else frame["arm"].isin(list(treatment))
    f = frame.loc[is_base | is_treat].assign(_all="all")[[*by, "experiment", "customer_id", "decision_id", *metrics]]
    f["group"] = np.where(is_base[is_base | is_treat], "b", "t")
    f["w"] = ipw_weights(frame.loc[is_base | is_treat]).to_numpy() if weighted else 1.0
    keys = [*by, "experiment", "group"]

    counts = f.groupby(keys, observed=True).agg(decisions=("decision_id", "size")).reset_index()
    wide = counts.pivot_table(index=[*by, "experiment"], columns="group", values="decisions", observed=True)
    wide = wide.reindex(columns=["t", "b"]).dropna()  # strata with both groups only
    wide.columns = ["t_decisions", "b_decisions"]
    strata = wide.reset_index()
    if strata.empty:
        return pd.DataFrame(columns=[*([] if overall else by), "treated_decisions", "baseline_decisions"])

    for m in metrics:
        f[f"wy_{m}"] = f["w"] * f[m].astype(float)
        mom = ratio_moments(f, keys, num=f"wy_{m}", den="w", cluster="customer_id")
        mw = mom.pivot_table(index=[*by, "experiment"], columns="group", values=["ratio", "var"], observed=True)
        mw.columns = [f"{m}_{stat}_{g}" for stat, g in mw.columns]
        strata = strata.merge(mw.reset_index(), on=[*by, "experiment"], how="left")

    # Stratify: each experiment's effect, weighted by its treated decisions.
    strata["sw"] = strata["t_decisions"]
    out_parts = {"experiments": ("experiment", "nunique"), "treated_decisions": ("t_decisions", "sum"),
                 "baseline_decisions": ("b_decisions", "sum")}
    for m in metrics:
        rt, rb = strata[f"{m}_ratio_t"], strata[f"{m}_ratio_b"]
        strata[f"{m}_sw_t"] = strata["sw"] * rt
        strata[f"{m}_sw_b"] = strata["sw"] * rb
        strata[f"{m}_sw2_var"] = strata["sw"] ** 2 * (strata[f"{m}_var_t"] + strata[f"{m}_var_b"])
        out_parts |= {f"{m}_sw_t": (f"{m}_sw_t", "sum"), f"{m}_sw_b": (f"{m}_sw_b", "sum"),
                      f"{m}_sw2_var": (f"{m}_sw2_var", "sum")}
    out_parts["sw"] = ("sw", "sum")
    out = strata.groupby(by, observed=True, sort=True).agg(**out_parts).reset_index()

    cust = f.groupby([*by, "group"], observed=True)["customer_id"].nunique().unstack("group")
    cust = cust.reindex(columns=["t", "b"]).rename(columns={"t": "treated_customers", "b": "baseline_customers"})
    out = out.merge(cust.reset_index(), on=by, how="left")

    for m in metrics:
        out[f"{m}_treated"] = out[f"{m}_sw_t"] / out["sw"]
        out[f"{m}_baseline"] = out[f"{m}_sw_b"] / out["sw"]
        out[f"{m}_uplift"] = out[f"{m}_treated"] - out[f"{m}_baseline"]
        var = out[f"{m}_sw2_var"] / out["sw"] ** 2
        ci = normal_interval(out[f"{m}_uplift"], var, confidence)
        for col in ("se", "lower", "upper", "p_value"):
            out[f"{m}_{col}"] = ci[col]
        for suffix, col in (("", "uplift"), ("_lower", "lower"), ("_upper", "upper")):
            out[f"{m}_incremental{suffix}"] = out[f"{m}_{col}"] * out["treated_decisions"]
        out = out.drop(columns=[f"{m}_sw_t", f"{m}_sw_b", f"{m}_sw2_var"])
    out = out.drop(columns="sw")
    return out.drop(columns="_all") if overall else out
