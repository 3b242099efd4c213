"""The configured LightGBM defaults and calibration recover a planted uplift from rare positives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from nextbest.config import load_config
from nextbest.models.calibration import ProbabilityCalibrator
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.response import ResponseModel
from nextbest.models.s_learner import SLearner
from nextbest.training.trainer import base_params


def planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows converting a few % of the time; the contact effect depends on a 'habit' and the channel."""
    rng = np.random.default_rng(seed)
    habit = rng.random(n)
    X = pd.DataFrame(
        {
            "engagement": rng.gamma(2.0, 1.0, n),
            "habit": habit,
            "noise": rng.normal(size=n),
            "offer_id": rng.choice(["a", "b", "c"], n),
            "channel": rng.choice(["email", "sms", "web"], n),
            "contacted": rng.random(n) < 0.8,
        }
    )
    base = -4.0 + 0.4 * X["engagement"].to_numpy()
    effect = 1.5 * (habit > 0.6) * np.where(X["channel"] == "web", 0.4, 1.0) - 0.8 * (habit < 0.2)
    p1, p0 = 1 / (1 + np.exp(-(base + effect))), 1 / (1 + np.exp(-base))
    y = (rng.random(n) < np.where(X["contacted"], p1, p0)).astype(np.int8)
    return X, y, p1 - p0


@pytest.mark.parametrize("calibration", ["sigmoid"])
def test_default_training_recovers_planted_uplift(calibration: str) -> None:
    training = load_config(None).training
    assert training.calibration == calibration
    X, y, _ = planted(40_000, seed=1)
    X_val, y_val, _ = planted(10_000, seed=2)
    X_test, _, true_uplift = planted(10_000, seed=3)
    params = base_params(training) | {"categorical": ("offer_id", "channel")}
    model = ResponseModel(SLearner(LGBMResponseClassifier(**params)), calibration=calibration).fit(
        X, y, X_calibration=X_val, y_calibration=y_val, eval_set=(X_val, y_val)
    )
    uplift = model.score(X_test.drop(columns=["contacted"]))["uplift"].to_numpy()
    assert spearmanr(uplift, true_uplift).statistic >= 0.5


def test_sigmoid_calibration_keeps_the_order_of_uplifts() -> None:
    # A Platt map is smooth and monotone, so a larger raw uplift at the same base stays larger.
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.001, 0.2, 5_000)
    y = (rng.random(5_000) < raw * 0.7).astype(int)
    cal = ProbabilityCalibrator("sigmoid").fit(raw, y)
    p0 = np.full(3, 0.05)
    uplifts = cal.transform(p0 + np.array([0.01, 0.02, 0.03])) - cal.transform(p0)
    assert np.all(np.diff(uplifts) > 0)


def test_configured_ignored_features_are_never_split_on() -> None:
    training = load_config(None).training.model_copy(update={"ignored_features": ("habit",), "n_estimators": 60})
    X, y, _ = planted(5_000, seed=4)
    params = base_params(training) | {"categorical": ("offer_id", "channel"), "early_stopping_rounds": None}
    estimator = LGBMResponseClassifier(**params).fit(X, y)
    importance = estimator.feature_importance()
    assert importance["habit"] == 0
    assert importance["engagement"] > 0
    assert "habit" in estimator.feature_names_in_  # still encoded: a model sharing the encoding can read it
