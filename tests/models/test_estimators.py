"""scikit-learn conventions and learning behaviour of the estimators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from nextbest.errors import BadInputError
from nextbest.models.bagged_learner import BaggedLearner
from nextbest.models.calibration import ProbabilityCalibrator
from nextbest.models.grouped import PerGroupClassifier
from nextbest.models.lgbm import LGBMResponseClassifier, LGBMValueRegressor
from nextbest.models.response import ResponseModel
from nextbest.models.s_learner import SLearner
from nextbest.models.shift_learner import ShiftLearner
from nextbest.models.t_learner import TLearner
from nextbest.models.value import ResponseValueModel
from nextbest.models.x_learner import XLearner

FAST = {"n_estimators": 60, "min_child_samples": 40}


def _estimators() -> list[object]:
    base = LGBMResponseClassifier(**FAST)
    return [
        base,
        LGBMValueRegressor(**FAST),
        PerGroupClassifier(base, min_group_rows=100),
        SLearner(base),
        TLearner(base),
        XLearner(base, effect_estimator=LGBMValueRegressor(**FAST)),
        ShiftLearner(base, effect_estimator=LGBMResponseClassifier(num_leaves=3), treatment_features=("channel",)),
        BaggedLearner(SLearner(base), n_members=2),
        ResponseValueModel(prior={"a": 1.0}),
        ProbabilityCalibrator("sigmoid"),
        ResponseModel(SLearner(base), calibration="sigmoid"),
    ]


@pytest.mark.parametrize("estimator", _estimators(), ids=lambda e: type(e).__name__)
def test_clone_round_trips_parameters(estimator: object) -> None:
    copy = clone(estimator)
    assert type(copy) is type(estimator)
    assert copy.get_params(deep=False).keys() == estimator.get_params(deep=False).keys()
    for key, value in estimator.get_params(deep=False).items():
        if not hasattr(value, "get_params"):
            assert copy.get_params(deep=False)[key] == value


def test_set_params_reaches_nested_estimator() -> None:
    learner = SLearner(LGBMResponseClassifier())
    learner.set_params(estimator__num_leaves=7)
    assert learner.estimator.num_leaves == 7


def test_classifier_learns_and_works_in_a_pipeline(frame: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    X, y, _ = frame
    X = X.drop(columns=["contacted"])
    pipe = Pipeline([("model", LGBMResponseClassifier(**FAST))]).fit(X[:9000], y[:9000])
    p = pipe.predict_proba(X[9000:])[:, 1]
    assert p.shape == (3000,)
    assert roc_auc_score(y[9000:], p) > 0.65
    assert set(np.unique(pipe.predict(X[9000:]))) <= {0, 1}


def test_early_stopping_uses_the_eval_set(frame: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    X, y, _ = frame
    X = X.drop(columns=["contacted"])
    model = LGBMResponseClassifier(n_estimators=2000, learning_rate=0.3, early_stopping_rounds=5)
    model.fit(X[:9000], y[:9000], eval_set=(X[9000:], y[9000:]))
    assert 0 < model.booster_.best_iteration < 2000


@pytest.mark.parametrize("learner", [SLearner, TLearner, XLearner, ShiftLearner], ids=lambda c: c.__name__)
def test_uplift_learners_rank_true_uplift(learner: type, frame: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    X, y, true_uplift = frame
    model = learner(LGBMResponseClassifier(**FAST)).fit(X[:9000], y[:9000])
    p1, p0 = model.predict_outcomes(X[9000:])
    assert ((0 <= p1) & (p1 <= 1) & (0 <= p0) & (p0 <= 1)).all()
    rho = spearmanr(model.predict_uplift(X[9000:]), true_uplift[9000:]).statistic
    assert rho > 0.4
    assert model.predict_proba(X[9000:]).shape == (3000, 2)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda X: X.drop(columns=["contacted"]), "lacks the treatment column 'contacted'"),
        (lambda X: X.assign(contacted=pd.array([None] * len(X), dtype="boolean")), "has nulls"),
        (lambda X: X.assign(contacted=True), "needs both contacted and control"),
    ],
)
@pytest.mark.parametrize("learner", [TLearner, ShiftLearner], ids=lambda c: c.__name__)
def test_uplift_learner_rejects_bad_treatment(learner, mutate, message: str, frame) -> None:  # type: ignore[no-untyped-def]
    X, y, _ = frame
    with pytest.raises(BadInputError, match=message):
        learner(LGBMResponseClassifier(**FAST)).fit(mutate(X[:500]), y[:500])


def test_per_group_fits_large_groups_and_falls_back_for_rare_ones(frame) -> None:  # type: ignore[no-untyped-def]
    X, y, _ = frame
    X = X.drop(columns=["contacted"])
    model = PerGroupClassifier(LGBMResponseClassifier(**FAST), min_group_rows=1000).fit(X, y)
    assert set(model.estimators_) == {f"{o}|{c}" for o in X["offer_id"].unique() for c in X["channel"].unique()}
    unseen = X[:5].assign(offer_id="new_offer")
    np.testing.assert_allclose(model.predict_proba(unseen), model.fallback_.predict_proba(unseen))
    contrib = model.predict_contrib(X[:10])
    assert list(contrib.columns)[-1] == "bias" and len(contrib) == 10


def test_value_model_uses_offer_means_when_price_is_fixed() -> None:
    X = pd.DataFrame({"offer_id": ["a"] * 600 + ["b"] * 600, "x": np.arange(1200.0)})
    y = np.r_[np.full(600, 20.0), np.full(600, 50.0)]
    model = ResponseValueModel(prior={"c": 99.0}).fit(X, y)
    assert model.estimator_ is None
    got = model.predict(pd.DataFrame({"offer_id": ["a", "b", "c", "zzz"], "x": [0.0] * 4}))
    np.testing.assert_allclose(got, [20.0, 50.0, 99.0, 35.0])


def test_value_model_learns_varying_revenue() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"offer_id": rng.choice(["a", "b"], 2000), "monetary": rng.uniform(0, 500, 2000)})
    y = 20 + 0.2 * X["monetary"].to_numpy() + rng.normal(0, 2, 2000)
    model = ResponseValueModel(min_rows=500).fit(X, y)
    assert model.estimator_ is not None
    pred = model.predict(pd.DataFrame({"offer_id": ["a", "a"], "monetary": [10.0, 450.0]}))
    assert pred[1] - pred[0] > 60


def test_bagged_learner_averages_members_that_differ(frame: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    X, y, true_uplift = frame
    model = BaggedLearner(SLearner(LGBMResponseClassifier(**FAST, random_state=4)), n_members=3).fit(X[:9000], y[:9000])
    seeds = [m.estimator_.random_state for m in model.members_]
    assert seeds == [4, 5, 6] and all(m.estimator_.bagging_fraction == 0.8 for m in model.members_)
    p1, p0 = model.predict_outcomes(X[9000:])
    member_p1 = [m.predict_outcomes(X[9000:])[0] for m in model.members_]
    assert not np.allclose(member_p1[0], member_p1[1])  # subsamples make the members differ
    np.testing.assert_allclose(p1, np.mean(member_p1, axis=0))
    assert spearmanr(p1 - p0, true_uplift[9000:]).statistic > 0.4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_members": 0}, "n_members must be at least 1, got 0"), ({"subsample": 1.5}, r"subsample must be in \(0, 1\], got 1.5")],
)
def test_bagged_learner_rejects_bad_parameters(kwargs: dict, message: str, frame) -> None:  # type: ignore[no-untyped-def]
    X, y, _ = frame
    with pytest.raises(BadInputError, match=message):
        BaggedLearner(SLearner(LGBMResponseClassifier(**FAST)), **kwargs).fit(X[:500], y[:500])
