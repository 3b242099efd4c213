"""Ratio estimates, differences, bootstrap and power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.reporting.stats import (
    Difference,
    bootstrap_ratio_difference,
    ratio_moments,
    sample_size_factor,
    z_value,
)


def test_ratio_moments_match_the_delta_method_by_hand() -> None:
    frame = pd.DataFrame(
        {"g": ["a"] * 5, "c": [1, 1, 2, 3, 3], "y": [1.0, 0.0, 1.0, 0.0, 0.0], "w": [1.0] * 5}
    )
    out = ratio_moments(frame, ["g"], num="y", den="w", cluster="c").iloc[0]
    num, den = np.array([1.0, 1.0, 0.0]), np.array([2.0, 1.0, 2.0])  # per-customer sums
    r = num.sum() / den.sum()
    var = 3 / 2 * ((num - r * den) ** 2).sum() / den.sum() ** 2
    assert out["ratio"] == pytest.approx(r)
    assert out["var"] == pytest.approx(var)
    assert out["clusters"] == 3


def test_ratio_variance_matches_the_binomial_for_one_decision_per_customer() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.1).astype(float)
    frame = pd.DataFrame({"g": 0, "c": np.arange(len(y)), "y": y, "w": 1.0})
    out = ratio_moments(frame, ["g"], "y", "w", "c").iloc[0]
    assert out["var"] == pytest.approx(y.var(ddof=1) / len(y), rel=1e-9)


def test_difference_interval_and_p_value() -> None:
    d = Difference.from_moments(0.02, 0.01**2, 0.95)
    assert (d.lower, d.upper) == pytest.approx((0.02 - 0.0196, 0.02 + 0.0196), abs=1e-4)
    assert d.p_value == pytest.approx(0.0455, abs=1e-3)
    assert d.significant
    assert not Difference.from_moments(0.01, 0.01**2, 0.95).significant


def test_bootstrap_interval_surrounds_the_estimate() -> None:
    rng = np.random.default_rng(1)
    nt, dt_ = rng.gamma(1.0, 10.0, 800) * (rng.random(800) < 0.2), rng.integers(1, 3, 800)
    nb, db = rng.gamma(1.0, 10.0, 600) * (rng.random(600) < 0.1), rng.integers(1, 3, 600)
    lo, hi = bootstrap_ratio_difference((nt, dt_), (nb, db), n_resamples=500, seed=0)
    est = nt.sum() / dt_.sum() - nb.sum() / db.sum()
    assert lo < est < hi
    # One customer cannot be resampled into an interval.
    assert all(np.isnan(b) for b in bootstrap_ratio_difference((nt[:1], dt_[:1]), (nb, db)))


@pytest.mark.parametrize(
    ("se", "effect", "expected"),
    [
        (0.01, 0.028, (0.01 / (0.028 / (1.959964 + 0.841621))) ** 2),  # ~1.0: the classic 80%-power design
        (0.01, 0.0, float("inf")),
        (0.002, 0.05, (0.002 / (0.05 / 2.801585)) ** 2),
    ],
)
def test_sample_size_factor(se: float, effect: float, expected: float) -> None:
    assert sample_size_factor(se, effect) == pytest.approx(expected, rel=1e-5)


def test_z_value() -> None:
    assert z_value(0.95) == pytest.approx(1.959964, rel=1e-6)
