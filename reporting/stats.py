"""Estimators for randomised comparisons: ratio metrics, differences, power.

Customers are the unit of randomisation, but a customer may receive several
decisions, so per-decision rates are *ratio metrics* (sum over customers of the
outcome divided by the sum of decisions). Their standard errors come from the
delta method on customer-level sums, which stays valid when one customer's
decisions are correlated (Deng, Knoblich & Lu, "Applying the Delta Method in
Metric Analytics", KDD 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


def z_value(confidence: float) -> float:
    """Two-sided normal quantile for ``confidence`` (1.96 for 0.95)."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def ratio_moments(frame: pd.DataFrame, by: list[str], num: str, den: str, cluster: str) -> pd.DataFrame:
    """Per-group ratio ``sum(num) / sum(den)`` with its cluster-robust variance.

    Parameters
    ----------
    frame
        One row per observation (a decision) with the columns named below.
    by
        Grouping columns; one output row per group.
    num, den
        Numerator (e.g. weighted conversions) and denominator (e.g. weights) columns.
    cluster
        Column identifying independent clusters (the customer).

    Returns
    -------
    DataFrame
        ``by`` + ``clusters``, ``num``, ``den``, ``ratio``, ``var`` (variance of the
        ratio, delta method with the ``n / (n - 1)`` small-sample factor).
    """
    sums = frame.groupby([*by, cluster], observed=True, sort=False)[[num, den]].sum()
    sums.columns = ["n_", "d_"]
    sums["nn_"] = sums["n_"] ** 2
    sums["dd_"] = sums["d_"] ** 2
    sums["nd_"] = sums["n_"] * sums["d_"]
    g = sums.groupby(level=list(range(len(by))), observed=True, sort=True)
    agg = g[["n_", "d_", "nn_", "dd_", "nd_"]].sum()
    agg["clusters"] = g.size()
    ratio = agg["n_"] / agg["d_"].where(agg["d_"] > 0)
    # sum_i (num_i - R den_i)^2 expanded, so it is computed from group sums alone.
    resid = agg["nn_"] - 2 * ratio * agg["nd_"] + ratio**2 * agg["dd_"]
    n = agg["clusters"]
    var = (n / (n - 1).where(n > 1)) * resid.clip(lower=0) / agg["d_"] ** 2
    out = pd.DataFrame(
        {"clusters": n, "num": agg["n_"], "den": agg["d_"], "ratio": ratio, "var": var}
    ).reset_index()
    return out


@dataclass(frozen=True)
class Difference:
    """A difference between two independent estimates with its normal interval."""

    estimate: float
    std_error: float
    lower: float
    upper: float
    p_value: float

    @classmethod
    def from_moments(cls, diff: float, var: float, confidence: float) -> Difference:
        """Normal-approximation interval and two-sided p-value for ``diff``."""
        se = float(np.sqrt(var)) if np.isfinite(var) and var >= 0 else float("nan")
        z = z_value(confidence)
        if se > 0:
            p = float(2 * stats.norm.sf(abs(diff) / se))
        else:
            p = float("nan") if not np.isfinite(diff) else (1.0 if diff == 0 else 0.0)
        return cls(float(diff), se, float(diff - z * se), float(diff + z * se), p)

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return bool(self.lower > 0 or self.upper < 0)


def normal_interval(diff: pd.Series, var: pd.Series, confidence: float) -> pd.DataFrame:
    """Vectorised :meth:`Difference.from_moments`: ``se``, ``lower``, ``upper``, ``p_value``."""
    se = np.sqrt(var)
    z = z_value(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.norm.sf(np.abs(diff) / se)
    return pd.DataFrame({"se": se, "lower": diff - z * se, "upper": diff + z * se, "p_value": p}, index=diff.index)


def bootstrap_ratio_difference(
    treated: tuple[np.ndarray, np.ndarray],
    baseline: tuple[np.ndarray, np.ndarray],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(num_t)/sum(den_t) - sum(num_b)/sum(den_b)``.

    Customers (clusters) are resampled within each group; ``treated`` and
    ``baseline`` are ``(num, den)`` arrays with one entry per customer. Revenue is
    heavy-tailed, which is why it gets a bootstrap instead of the normal interval.

    Returns
    -------
    tuple of float
        Lower and upper bound.
    """
    nt, dt = (np.asarray(a, dtype=float) for a in treated)
    nb, db = (np.asarray(a, dtype=float) for a in baseline)
    if len(nt) < 2 or len(nb) < 2:
        return float("nan"), float("nan")

    def statistic(it: np.ndarray, ib: np.ndarray, axis: int = -1) -> np.ndarray:
        # Resampling *indices* keeps each customer's (num, den) pair together.
        return nt[it].sum(axis) / dt[it].sum(axis) - nb[ib].sum(axis) / db[ib].sum(axis)

    # Memory of one batch is batch x customers indices; keep it around 20 MB.
    batch = max(1, int(2_500_000 // max(len(nt) + len(nb), 1)))
    res = stats.bootstrap(
        (np.arange(len(nt)), np.arange(len(nb))),
        statistic,
        n_resamples=n_resamples,
        batch=batch,
        vectorized=True,
        method="percentile",
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def sample_size_factor(std_error: float, effect: float, *, confidence: float = 0.95, power: float = 0.8) -> float:
    """How many times the current sample a test needs to detect ``effect``.

    A two-sided test at level ``1 - confidence`` detects ``effect`` with
    probability ``power`` once its standard error has shrunk to
    ``|effect| / (z_{1-alpha/2} + z_power)``; standard errors shrink with the
    square root of the sample, so the factor is the squared ratio.

    Returns
    -------
    float
        ``inf`` for a zero effect (no sample size detects it), else the factor (may be < 1).
    """
    if not np.isfinite(std_error) or not np.isfinite(effect):
        return float("nan")
    if effect == 0:
        return float("inf")
    target = abs(effect) / (z_value(confidence) + float(stats.norm.ppf(power)))
    return float((std_error / target) ** 2)
