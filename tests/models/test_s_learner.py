"""SLearner treatment features: the channel only acts through a contact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from nextbest.models import s_learner
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.s_learner import SLearner

from .conftest import make_frame


def channel_effect_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rare positives; the contact effect is the channel's; the recorded channel of control rows is noise."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "engagement": rng.gamma(2.0, 1.0, n),
            "channel": rng.choice(["email", "push", "web", "sms"], n),
            "contacted": rng.random(n) < 0.8,
        }
    )
    base = -3.8 + 0.4 * X["engagement"].to_numpy()
    effect = X["channel"].map({"email": 0.5, "push": 1.2, "web": 0.1, "sms": 0.3}).to_numpy()
    p1, p0 = 1 / (1 + np.exp(-(base + effect))), 1 / (1 + np.exp(-base))
    y = (rng.random(n) < np.where(X["contacted"], p1, p0)).astype(np.int8)
    return X, y, p1 - p0


def learner(**kwargs: object) -> SLearner:
    base = LGBMResponseClassifier(n_estimators=300, learning_rate=0.03, num_leaves=7, min_child_samples=200,
                                  feature_fraction=0.5, lambda_l2=10.0, early_stopping_rounds=None,
                                  categorical=("channel",))
    return SLearner(base, **kwargs)


def test_masked_channel_recovers_the_channel_effects() -> None:
    X, y, _ = channel_effect_frame(30_000, seed=0)
    X_test, _, true_uplift = channel_effect_frame(5_000, seed=1)
    model = learner(treatment_features=("channel",)).fit(X, y)
    predicted = model.predict_uplift(X_test)
    by_channel = pd.Series(predicted).groupby(X_test["channel"].to_numpy()).mean()
    assert list(by_channel.sort_values().index) == ["web", "sms", "email", "push"]
    assert spearmanr(predicted, true_uplift).statistic >= 0.5


@pytest.mark.parametrize("rows", [7, s_learner._STACK_ROWS + 5], ids=["stacked", "in-place"])
def test_control_arm_is_scored_with_the_channel_missing(rows: int) -> None:
    X, y, _ = make_frame(3_000, seed=2)
    model = learner(treatment_features=("channel",)).fit(X, y)
    sample = make_frame(rows, seed=3)[0]
    p1, p0 = model.predict_outcomes(sample)
    np.testing.assert_allclose(p1, model.predict_proba(sample.assign(contacted=True))[:, 1])
    np.testing.assert_allclose(p0, model.predict_proba(sample.assign(contacted=False))[:, 1])
    np.testing.assert_allclose(p0, model.predict_proba(sample.assign(contacted=False, channel=None))[:, 1])
