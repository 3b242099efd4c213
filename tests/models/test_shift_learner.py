"""ShiftLearner: a baseline model plus a contact-effect model in log-odds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone

from nextbest.errors import BadInputError
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.shift_learner import ShiftLearner

from .conftest import make_frame
from .test_s_learner import channel_effect_frame

BASE = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 7, "min_child_samples": 200,
        "feature_fraction": 0.5, "lambda_l2": 10.0, "early_stopping_rounds": None, "categorical": ("channel",)}


def shift(**kwargs: object) -> ShiftLearner:
    effect = LGBMResponseClassifier(**(BASE | {"num_leaves": 3, "min_child_samples": 400}))
    return ShiftLearner(LGBMResponseClassifier(**BASE), effect, treatment_features=("channel",), **kwargs)


def test_recovers_channel_effects_the_baseline_never_sees() -> None:
    X, y, _ = channel_effect_frame(30_000, seed=0)
    X_test, _, true_uplift = channel_effect_frame(5_000, seed=1)
    model = shift().fit(X, y)
    predicted = model.predict_uplift(X_test)
    by_channel = pd.Series(predicted).groupby(X_test["channel"].to_numpy()).mean()
    assert list(by_channel.sort_values().index) == ["web", "sms", "email", "push"]
    assert spearmanr(predicted, true_uplift).statistic >= 0.6
    # The control arm does not depend on the channel: the baseline never reads it.
    _, p0 = model.predict_outcomes(X_test)
    _, p0_other = model.predict_outcomes(X_test.assign(channel="web"))
    np.testing.assert_allclose(p0, p0_other)


def test_logits_decompose_the_arms() -> None:
    X, y, _ = make_frame(4_000, seed=2)
    model = shift(n_rounds=1).fit(X, y, eval_set=(X[:1000], y[:1000]))
    sample = make_frame(50, seed=3)[0]
    b, tau = model.predict_logits(sample)
    p1, p0 = model.predict_outcomes(sample)
    np.testing.assert_allclose(p0, 1 / (1 + np.exp(-b)))
    np.testing.assert_allclose(p1, 1 / (1 + np.exp(-(b + tau))))
    np.testing.assert_allclose(model.predict_proba(sample)[:, 1], np.where(sample["contacted"], p1, p0))
    # The shared-encoding path equals encoding each model's own frame.
    features = sample.drop(columns=["contacted"])
    slow_b = model.intercept_ + model.baseline_.decision_function(model._masked(features))
    slow_tau = model.effect0_ + model.effect_.decision_function(features)
    np.testing.assert_allclose(b, slow_b)
    np.testing.assert_allclose(tau, slow_tau)


def test_contributions_sum_to_the_contacted_log_odds() -> None:
    X, y, _ = make_frame(4_000, seed=4)
    model = shift().fit(X, y)
    sample = make_frame(20, seed=5)[0]
    contrib = model.predict_contrib(sample)
    b, tau = model.predict_logits(sample)
    intercepts = model.intercept_ + model.effect0_
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy() + intercepts, b + tau, rtol=1e-6, atol=1e-9)
    assert "contacted" not in contrib.columns and "channel" in contrib.columns


def test_clone_keeps_both_estimators() -> None:
    model = shift(n_rounds=3)
    copy = clone(model)
    assert copy.n_rounds == 3 and copy.effect_estimator.num_leaves == 3


def test_rejects_zero_rounds() -> None:
    X, y, _ = make_frame(500, seed=6)
    with pytest.raises(BadInputError, match="n_rounds must be at least 1, got 0"):
        shift(n_rounds=0).fit(X, y)


def test_effect_model_can_ignore_the_offer() -> None:
    X, y, _ = make_frame(4_000, seed=6)
    effect = LGBMResponseClassifier(**(BASE | {"num_leaves": 3, "min_child_samples": 100,
                                               "ignored_features": ("offer_id",)}))
    model = ShiftLearner(LGBMResponseClassifier(**BASE), effect, treatment_features=("channel",)).fit(X, y)
    assert model.effect_.feature_importance("split")["offer_id"] == 0
    assert model.baseline_.feature_importance("split")["offer_id"] > 0
    # The contact effect of a customer and channel is the same whatever the offer.
    sample = make_frame(40, seed=7)[0]
    taus = [model.predict_logits(sample.assign(offer_id=o))[1] for o in ("fashion_sale", "book_club", "sports_gear")]
    np.testing.assert_allclose(taus[0], taus[1])
    np.testing.assert_allclose(taus[0], taus[2])


def test_ignoring_a_column_the_frame_lacks_names_it() -> None:
    X, y, _ = make_frame(500, seed=8)
    model = LGBMResponseClassifier(**(BASE | {"ignored_features": ("offer", "channel")}))
    with pytest.raises(BadInputError, match=r"ignored_features: \['offer'\] are not columns of the training frame"):
        model.fit(X, y)
