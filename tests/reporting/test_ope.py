"""Off-policy estimators on a synthetic contextual bandit whose true values are known."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from nextbest.errors import BadInputError
from nextbest.reporting.ope import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    LoggedBandit,
    OffPolicyEvaluation,
    SelfNormalizedIPW,
    bandit_from_outcomes,
    deterministic_policy,
    epsilon_greedy_policy,
    softmax_policy,
)

N_ACTIONS = 5


def _world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Contexts and their true conversion probability per action."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    theta = np.random.default_rng(0).normal(scale=0.8, size=(3, N_ACTIONS))
    q = 1 / (1 + np.exp(-(x @ theta - 2.0)))
    return x, q


def _logged(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, LoggedBandit]:
    rng = np.random.default_rng(seed + 1)
    x, q = _world(n, seed)
    # A non-uniform logging policy that favours the first actions, varying with context.
    logit = np.outer(x[:, 0], np.linspace(-1, 1, N_ACTIONS)) + np.linspace(1, 0, N_ACTIONS)
    pi0 = softmax_policy(logit)
    a = (pi0.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    r = (rng.random(n) < q[np.arange(n), a]).astype(float)
    return x, q, LoggedBandit(action=a, reward=r, pscore=pi0[np.arange(n), a], n_actions=N_ACTIONS)


def _reward_model(x: np.ndarray, data: LoggedBandit, x_train: np.ndarray, train: LoggedBandit) -> np.ndarray:
    """A real fitted model, trained on a separate log so DR's correction stays honest."""

    def design(xx: np.ndarray, aa: np.ndarray) -> np.ndarray:
        onehot = np.eye(N_ACTIONS)[aa]
        return np.hstack([onehot, (xx[:, :, None] * onehot[:, None, :]).reshape(len(xx), -1)])

    model = LogisticRegression(max_iter=500).fit(design(x_train, train.action), train.reward)
    return np.column_stack(
        [model.predict_proba(design(x, np.full(len(x), k)))[:, 1] for k in range(N_ACTIONS)]
    )


def _policies(q_hat: np.ndarray, n: int) -> dict[str, np.ndarray]:
    return {
        "uniform": np.full((n, N_ACTIONS), 1 / N_ACTIONS),
        "epsilon_greedy": epsilon_greedy_policy(q_hat, epsilon=0.2),
        "always_last": deterministic_policy(np.full(n, N_ACTIONS - 1), N_ACTIONS),
    }


def test_three_policies_lie_within_their_intervals_of_the_true_value() -> None:
    x_train, _, train = _logged(20_000, seed=101)
    x, q, data = _logged(20_000, seed=202)
    q_hat = _reward_model(x, data, x_train, train)
    ope = OffPolicyEvaluation(data, (InverseProbabilityWeighting(), SelfNormalizedIPW(), DoublyRobust()))
    for name, dist in _policies(q_hat, data.n_rounds).items():
        truth = float((dist * q).sum(axis=1).mean())
        table = ope.estimate(dist, estimated_rewards=q_hat)
        assert set(table["estimator"]) == {"ipw", "snipw", "dr"}
        for row in table.itertuples():
            assert row.lower <= truth <= row.upper, (name, row.estimator, truth, row.value, row.lower, row.upper)
        # DR uses the model to cut variance: its interval is no wider than IPS's.
        se = table.set_index("estimator")["std_error"]
        assert se["dr"] <= se["ipw"], name


def test_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    hits = {"ipw": 0, "snipw": 0}
    reps = 200
    for seed in range(reps):
        x, q, data = _logged(1_500, seed=seed)
        dist = epsilon_greedy_policy(q, epsilon=0.3)  # the oracle-greedy policy
        truth = float((dist * q).sum(axis=1).mean())
        for est in (InverseProbabilityWeighting(), SelfNormalizedIPW()):
            hits[est.name] += est.estimate_interval(data, dist).covers(truth)
    for name, h in hits.items():
        assert 0.88 <= h / reps <= 0.99, (name, h / reps)


def test_on_policy_evaluation_equals_the_logged_mean() -> None:
    x, q, data = _logged(2_000, seed=3)
    # Evaluating the logging policy itself: every weight is 1, IPS is the plain mean.
    logit = np.outer(x[:, 0], np.linspace(-1, 1, N_ACTIONS)) + np.linspace(1, 0, N_ACTIONS)
    est = InverseProbabilityWeighting().estimate_interval(data, softmax_policy(logit))
    logged = OffPolicyEvaluation(data).logged_value()
    assert est.value == pytest.approx(logged.value)
    assert est.effective_sample_size == pytest.approx(data.n_rounds)


def test_direct_method_with_a_perfect_model_is_exact() -> None:
    x, q, data = _logged(1_000, seed=4)
    dist = _policies(q, data.n_rounds)["epsilon_greedy"]
    assert DirectMethod().estimate_policy_value(data, dist, q) == pytest.approx((dist * q).sum(axis=1).mean())


def test_clipping_bounds_the_weights() -> None:
    x, q, data = _logged(1_000, seed=5)
    dist = deterministic_policy(np.full(data.n_rounds, N_ACTIONS - 1), N_ACTIONS)
    clipped = InverseProbabilityWeighting(max_weight=2.0).estimate_interval(data, dist)
    assert clipped.value <= 2.0 * data.reward.mean() + 1e-12


GOOD = dict(action=np.array([0, 1]), reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]), n_actions=2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": np.array([0, 2])}, "integer indices in [0, 2)"),
        ({"action": np.array([0.0, 1.0])}, "integer indices"),
        ({"pscore": np.array([0.0, 0.5])}, "pscore must lie in (0, 1]"),
        ({"pscore": np.array([0.5, 1.5])}, "pscore must lie in (0, 1]"),
        ({"reward": np.array([np.nan, 0.0])}, "reward has missing"),
        ({"reward": np.array([1.0])}, "must be 1-d of one length"),
        ({"action_names": ("a",)}, "action_names has 1 names for 2 actions"),
        ({"action": np.array([], dtype=int), "reward": np.array([]), "pscore": np.array([])}, "empty"),
    ],
)
def test_invalid_feedback_is_rejected_with_the_fix(change: dict, message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)):
        LoggedBandit(**(GOOD | change))


@pytest.mark.parametrize(
    ("dist", "q_hat", "estimator", "message"),
    [
        (np.array([[0.5, 0.6], [0.5, 0.5]]), None, InverseProbabilityWeighting(), "probability distributions"),
        (np.array([[-0.5, 1.5], [0.5, 0.5]]), None, InverseProbabilityWeighting(), "probability distributions"),
        (np.array([[1.0, 0.0]]), None, InverseProbabilityWeighting(), "shape (n_rounds, n_actions) = (2, 2)"),
        (np.array([[1.0, 0.0], [0.0, 1.0]]), None, DoublyRobust(), "estimated_rewards is required"),
        (np.array([[1.0, 0.0], [0.0, 1.0]]), np.ones((2, 3)), DoublyRobust(), "estimated_rewards must have shape"),
        (np.array([[0.0, 1.0], [1.0, 0.0]]), None, SelfNormalizedIPW(), "zero probability to every logged action"),
    ],
)
def test_invalid_policy_inputs_are_rejected(dist: np.ndarray, q_hat: np.ndarray | None, estimator, message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)):
        estimator.estimate_interval(LoggedBandit(**GOOD), dist, q_hat)


def test_bandit_from_outcomes_combines_arm_share_and_logged_propensity() -> None:
    outcomes = pd.DataFrame(
        {
            "decision_id": ["a", "b", "c", "d"],
            "experiment": ["e"] * 4,
            "arm": ["random", "random", "random", "control"],
            "offer_id": ["o1", "o2", "o1", "o1"],
            "channel": ["email", "sms", "email", "email"],
            "contacted": [True, True, True, False],
            "propensity": [0.5, 0.25, 0.5, 0.5],  # control logs its would-be action's propensity
            "converted": [1, 0, 0, 1],
        }
    )
    data = bandit_from_outcomes(outcomes)
    assert data.action_names == ("no_action", "o1/email", "o2/sms")
    assert list(data.action) == [1, 2, 1, 0]
    np.testing.assert_allclose(data.pscore, [0.75 * 0.5, 0.75 * 0.25, 0.75 * 0.5, 0.25])
