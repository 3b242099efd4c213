"""CLV regressor: LightGBM on enough history, run-rate fallback on each value basis, JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nextbest.features.clv import ClvRegressor
from sklearn.base import clone


def data(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    margin = rng.gamma(1.0, 50.0, n) * (rng.random(n) < 0.7)
    engaged = rng.random(n)
    X = pd.DataFrame({"margin_365d": margin, "monetary_365d": margin * 4, "frequency_365d": (margin > 0) * 2,
                      "engagement_score": engaged})
    y = margin * 0.25 * (0.5 + engaged)  # next-90-day margin, about a quarter of last year's
    return X, y


def test_fits_lightgbm_and_scales_to_twelve_months() -> None:
    X, y = data(600)
    est = ClvRegressor(label_days=90, min_customers=100, n_estimators=60).fit(X, y)
    assert est.method_ == "lightgbm"
    pred = est.predict(X)
    assert (pred >= 0).all()
    assert np.corrcoef(pred, y)[0, 1] > 0.9
    assert pred.mean() == pytest.approx(y.mean() * 365 / 90, rel=0.2)
    back = ClvRegressor.from_dict(est.to_dict())
    np.testing.assert_allclose(back.predict(X), pred)


@pytest.mark.parametrize("case", ["few buyers", "no positive label"])
def test_falls_back_to_run_rate(case: str) -> None:
    X, y = data(50) if case == "few buyers" else data(600)
    if case == "no positive label":
        y = np.zeros_like(y)
    est = ClvRegressor(min_customers=100).fit(X, y)
    assert est.method_ == "run_rate" and est.booster_ is None
    np.testing.assert_array_equal(est.predict(X), X["margin_365d"].to_numpy())
    assert clone(est).get_params()["min_customers"] == 100


@pytest.mark.parametrize(("basis", "rate", "feature", "scale"), [
    ("margin", None, "margin_365d", 1.0),
    ("amount", None, "monetary_365d", 1.0),
    ("amount x margin_rate", 0.25, "monetary_365d", 0.25),
])
def test_run_rate_reads_the_basis_feature(basis: str, rate: float | None, feature: str, scale: float) -> None:
    X, y = data(50)
    est = ClvRegressor(basis=basis, margin_rate=rate, min_customers=100).fit(X, y)
    assert est.method_ == "run_rate" and est.run_rate_feature == feature
    np.testing.assert_allclose(est.predict(X), X[feature].to_numpy() * scale)
    assert ClvRegressor.from_dict(est.to_dict()).basis == basis


def test_unknown_basis_is_refused() -> None:
    X, y = data(50)
    with pytest.raises(ValueError, match="basis must be"):
        ClvRegressor(basis="profit").fit(X, y)


def test_early_stopping_picks_fewer_rounds_on_noise_and_refits_on_all_rows() -> None:
    X, _ = data(800)
    rng = np.random.default_rng(1)
    noise = rng.gamma(0.3, 20.0, len(X)) * (rng.random(len(X)) < 0.3)  # unrelated to the inputs
    stopped = ClvRegressor(min_customers=100, n_estimators=300, early_stopping_rounds=10).fit(X, noise)
    assert stopped.method_ == "lightgbm" and 1 <= stopped.n_iter_ < 100
    assert stopped.booster_.current_iteration() == stopped.n_iter_
    full = ClvRegressor(min_customers=100, n_estimators=40, early_stopping_rounds=None).fit(X, noise)
    assert full.n_iter_ == 40
    assert ClvRegressor.from_dict(stopped.to_dict()).n_iter_ == stopped.n_iter_
