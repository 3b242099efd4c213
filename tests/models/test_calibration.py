from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from nextbest.errors import BadInputError
from nextbest.models.calibration import ProbabilityCalibrator
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.metrics import expected_calibration_error


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_improves_brier_of_an_overconfident_model(method: str, frame) -> None:  # type: ignore[no-untyped-def]
    X, y, _ = frame
    # Few rows per leaf and a high learning rate: an overfitted, overconfident model.
    model = LGBMResponseClassifier(n_estimators=300, learning_rate=0.3, num_leaves=63, min_child_samples=2,
                                   early_stopping_rounds=None).fit(X[:6000], y[:6000])
    raw_cal, raw_test = model.predict_proba(X[6000:9000])[:, 1], model.predict_proba(X[9000:])[:, 1]
    cal = ProbabilityCalibrator(method).fit(raw_cal, y[6000:9000])
    fixed = cal.transform(raw_test)
    assert brier_score_loss(y[9000:], fixed) < brier_score_loss(y[9000:], raw_test)
    assert expected_calibration_error(y[9000:], fixed) < expected_calibration_error(y[9000:], raw_test)


def test_isotonic_map_is_strictly_increasing_so_rankings_survive() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.3, 5000)
    y = rng.random(5000) < p
    cal = ProbabilityCalibrator("isotonic").fit(p, y)
    grid = np.linspace(0.001, 0.299, 500)
    out = cal.transform(grid)
    assert (np.diff(out) > 0).all()
    assert (0 <= out).all() and (out <= 1).all()


def test_none_is_identity() -> None:
    p = np.array([0.1, 0.5])
    np.testing.assert_array_equal(ProbabilityCalibrator("none").fit(p, [0, 1]).transform(p), p)


@pytest.mark.parametrize(
    ("method", "p", "y", "message"),
    [
        ("isotonic", [0.1, 0.2], [1], "2 probabilities but 1 labels"),
        ("platt", [0.1], [1], "unknown method 'platt'"),
    ],
)
def test_invalid_input(method: str, p: list[float], y: list[int], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        ProbabilityCalibrator(method).fit(np.array(p), np.array(y))  # type: ignore[arg-type]
