"""A/B analysis of the decision log: arms, incremental effects, verdicts.

Every experiment in the log is analysed on its own. Each arm is compared with
the control arm (what the arm *added*), and a challenger with the champion
(whether it should take over). Conversion intervals use the normal
approximation on customer-clustered ratio estimates; revenue, being heavy
tailed, gets a customer bootstrap (``scipy.stats.bootstrap``). Per-offer and
per-channel cuts weight decisions by their inverse logged propensity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nextbest.reporting import format as fmt
from nextbest.reporting.effects import compare_arms
from nextbest.reporting.stats import bootstrap_ratio_difference, ratio_moments, sample_size_factor

#: Arms that are never contacted and serve as the baseline: an experiment's control arm, and the persistent
#: universal control group (``policy.universal_control``, logged under its default name).
CONTROL_ARMS: frozenset[str] = frozenset({"control", "universal_control"})


@dataclass(frozen=True)
class AbAnalysis:
    """The result of :func:`analyze_experiments`.

    Attributes
    ----------
    arms
        One row per (experiment, arm): customers, decisions, contacts, conversions,
        revenue and rates.
    comparisons
        One row per (experiment, treatment, baseline) with effects, intervals,
        p-values, the power calculation and a plain-language ``verdict``.
    breakdown
        Treatment-versus-control effects per offer and per channel (``dimension``, ``value``).
    """

    arms: pd.DataFrame
    comparisons: pd.DataFrame
    breakdown: pd.DataFrame
    currency: str
    confidence: float
    response_window_days: int
    immature: int
    period: tuple[dt.datetime | None, dt.datetime | None]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def verdicts(self) -> list[str]:
        """The comparisons' verdicts, one sentence each."""
        return list(self.comparisons["verdict"]) if len(self.comparisons) else []

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (NaN becomes null)."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            clean = frame.astype(object).where(frame.notna(), None)
            return [{k: _plain(v) for k, v in row.items()} for row in clean.to_dict("records")]

        return {
            "currency": self.currency,
            "confidence": self.confidence,
            "response_window_days": self.response_window_days,
            "immature_decisions_excluded": self.immature,
            "period": {"from": _plain(self.period[0]), "to": _plain(self.period[1])},
            "verdicts": self.verdicts,
            "arms": records(self.arms),
            "comparisons": records(self.comparisons),
            "breakdown": records(self.breakdown),
        }

    def metrics(self) -> dict[str, float]:
        """Flat numeric metrics for the tracking server, e.g. ``nba-2024.champion.conversion_rate``."""
        out: dict[str, float] = {}
        for row in self.arms.itertuples():
            for col in ("decisions", "contacts", "conversion_rate", "revenue_per_decision"):
                out[f"{row.experiment}.{row.arm}.{col}"] = float(getattr(row, col))
        for row in self.comparisons.itertuples():
            key = f"{row.experiment}.{row.treatment}_vs_{row.baseline}"
            for col in ("converted_uplift", "converted_p_value", "converted_incremental", "revenue_incremental"):
                out[f"{key}.{col}"] = float(getattr(row, col))
        return {k: v for k, v in out.items() if np.isfinite(v)}


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (pd.Timestamp, dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def arm_summary(outcomes: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (experiment, arm): volumes and rates per decision.

    Returns
    -------
    DataFrame
        ``experiment, arm, customers, decisions, contacts, responses, conversions, revenue,
        response_rate, conversion_rate, conversion_rate_se, revenue_per_decision,
        revenue_per_customer``.
    """
    keys = ["experiment", "arm"]
    g = outcomes.groupby(keys, observed=True, sort=True)
    out = g.agg(
        customers=("customer_id", "nunique"),
        decisions=("decision_id", "size"),
        contacts=("contacted", "sum"),
        responses=("responded", "sum"),
        conversions=("converted", "sum"),
        revenue=("revenue", "sum"),
    ).reset_index()
    out["response_rate"] = out["responses"] / out["decisions"]
    out["conversion_rate"] = out["conversions"] / out["decisions"]
    mom = ratio_moments(outcomes.assign(_one=1.0), keys, num="converted", den="_one", cluster="customer_id")
    out["conversion_rate_se"] = np.sqrt(mom["var"].to_numpy())
    out["revenue_per_decision"] = out["revenue"] / out["decisions"]
    out["revenue_per_customer"] = out["revenue"] / out["customers"]
    return out


def _pairs(arms: Collection[str], control_arms: Collection[str]) -> list[tuple[str, str]]:
    """(treatment, baseline) pairs worth testing among an experiment's arms."""
    controls = sorted(a for a in arms if a in control_arms)
    pairs = [(a, c) for c in controls for a in sorted(arms) if a not in control_arms]
    if "champion" in arms and "challenger" in arms:
        pairs.append(("challenger", "champion"))
    return pairs


def _round_sig(x: float, digits: int = 2) -> float:
    """Round to ``digits`` significant digits: a power calculation is no more precise."""
    return 0.0 if x <= 0 else float(round(x, -int(np.floor(np.log10(x))) + digits - 1))


def verdict(row: pd.Series, currency: str) -> str:
    """One sentence a marketer can act on, from a comparison row."""
    t, b = row["treatment"], row["baseline"]
    diff, lo, hi = row["converted_uplift"], row["converted_lower"], row["converted_upper"]
    half = (hi - lo) / 2
    word = "beats" if diff > 0 else "trails"
    head = (
        f"{t} {word} {b} by {fmt.points(abs(diff)).lstrip('+')} conversion per decision "
        f"(± {fmt.points(half).lstrip('+')}, {fmt.p_value(row['converted_p_value'])})"
    )
    money = fmt.money(row["revenue_incremental"], currency, signed=True)
    if lo > 0 or hi < 0:
        return (
            f"{head}: significant; {fmt.signed_count(row['converted_incremental'])} conversions and "
            f"{money} revenue against {b} over {fmt.count(row['treated_decisions'])} decisions."
        )
    more = row["extra_customers_needed"]
    if not np.isfinite(more):
        tail = "no difference measured, so no sample size would settle it."
    else:
        tail = f"about {fmt.count(_round_sig(more))} more customers needed to tell."
    return f"{head}: not significant yet — {tail}"


def analyze_experiments(
    outcomes: pd.DataFrame,
    *,
    currency: str,
    control_arms: Collection[str] = CONTROL_ARMS,
    confidence: float = 0.95,
    power: float = 0.8,
    n_resamples: int = 2000,
    seed: int = 0,
    period: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
) -> AbAnalysis:
    """Analyse every experiment in ``outcomes``.

    Parameters
    ----------
    outcomes
        From :func:`nextbest.reporting.outcomes.load_outcomes`.
    currency
        ISO code for the verdicts (``config.channels.currency``).
    control_arms
        Arm names that are the untreated baseline.
    confidence, power
        Interval coverage and the power the sample-size calculation aims for.
    n_resamples, seed
        Revenue bootstrap settings.
    period
        The ``(from, to)`` the outcomes were selected with. The analysis reports the
        period its decisions actually span (first and last decision time), which lies
        within it; this is used only when ``outcomes`` is empty.
    """
    arms = arm_summary(outcomes, confidence)
    rows: list[pd.DataFrame] = []
    cuts: list[pd.DataFrame] = []
    for experiment, frame in outcomes.groupby("experiment", sort=True):
        for treatment, baseline in _pairs(set(frame["arm"]), control_arms):
            res = compare_arms(frame, baseline=baseline, treatment=[treatment], confidence=confidence)
            if res.empty:
                continue
            res.insert(0, "experiment", experiment)
            res.insert(1, "treatment", treatment)
            res.insert(2, "baseline", baseline)
            per_customer = frame.groupby(["arm", "customer_id"], sort=False).agg(
                rev=("revenue", "sum"), n=("decision_id", "size")
            )
            lo, hi = bootstrap_ratio_difference(
                (per_customer.loc[treatment, "rev"].to_numpy(), per_customer.loc[treatment, "n"].to_numpy()),
                (per_customer.loc[baseline, "rev"].to_numpy(), per_customer.loc[baseline, "n"].to_numpy()),
                confidence=confidence, n_resamples=n_resamples, seed=seed,
            )
            # The bootstrap replaces the normal revenue interval; incremental bounds follow it.
            res["revenue_lower"], res["revenue_upper"] = lo, hi
            res["revenue_incremental_lower"] = lo * res["treated_decisions"]
            res["revenue_incremental_upper"] = hi * res["treated_decisions"]
            res["revenue_interval_method"] = "bootstrap"
            factor = sample_size_factor(
                float(res["converted_se"].iloc[0]), float(res["converted_uplift"].iloc[0]),
                confidence=confidence, power=power,
            )
            current = float(res["treated_customers"].iloc[0] + res["baseline_customers"].iloc[0])
            res["extra_customers_needed"] = max(0.0, (factor - 1.0) * current) if np.isfinite(factor) else factor
            res["significant"] = (res["converted_lower"] > 0) | (res["converted_upper"] < 0)
            rows.append(res)
            if baseline in control_arms:
                sub = frame[frame["arm"].isin([treatment, baseline])]
                for dimension, column in (("offer", "offer_id"), ("channel", "channel")):
                    cut = compare_arms(
                        sub[sub[column].notna()], baseline=baseline, treatment=[treatment], by=[column],
                        weighted=True, confidence=confidence,
                    )
                    if cut.empty:
                        continue
                    cut = cut.rename(columns={column: "value"})
                    cut.insert(0, "experiment", experiment)
                    cut.insert(1, "treatment", treatment)
                    cut.insert(2, "baseline", baseline)
                    cut.insert(3, "dimension", dimension)
                    cuts.append(cut)
    comparisons = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["experiment", "treatment", "baseline", "verdict"]
    )
    if rows:
        comparisons["verdict"] = comparisons.apply(verdict, axis=1, currency=currency)
    breakdown = pd.concat(cuts, ignore_index=True) if cuts else pd.DataFrame(columns=["experiment", "dimension", "value"])
    return AbAnalysis(
        arms=arms,
        comparisons=comparisons,
        breakdown=breakdown,
        currency=currency,
        confidence=confidence,
        response_window_days=int(outcomes.attrs.get("response_window_days", 0)),
        immature=int(outcomes.attrs.get("immature", 0)),
        period=_decided(outcomes, period),
    )


def _decided(
    outcomes: pd.DataFrame, selected: tuple[dt.datetime | None, dt.datetime | None]
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """First and last decision time of ``outcomes`` (the selection when there is none)."""
    if outcomes.empty or "ts" not in outcomes:
        return selected
    ts = pd.to_datetime(outcomes["ts"])
    return ts.min().to_pydatetime(), ts.max().to_pydatetime()
