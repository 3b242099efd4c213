"""Off-policy evaluation: what would a new policy have earned on the logged decisions?

The API follows Open Bandit Pipeline's ``obp.ope`` in miniature: logged
feedback (action, reward, logging propensity), the target policy's action
probabilities ``action_dist`` of shape ``(n_rounds, n_actions)`` and, for the
model-based estimators, a reward model's predictions ``estimated_rewards`` of
the same shape. Each estimator returns a point estimate and a normal interval
from its per-round influence values.

Example
-------
>>> data = LoggedBandit(action=a, reward=r, pscore=p, n_actions=3)
>>> OffPolicyEvaluation(data).estimate(target_dist, estimated_rewards=q_hat)  # doctest: +SKIP
   estimator   value  std_error  lower  upper  n_rounds  effective_sample_size

References
----------
Dudík, Langford & Li, "Doubly Robust Policy Evaluation and Learning", ICML 2011.
Swaminathan & Joachims, "The Self-Normalized Estimator for Counterfactual Learning", NeurIPS 2015.
Saito et al., "Open Bandit Dataset and Pipeline", NeurIPS 2021 Datasets track.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from nextbest.errors import BadInputError
from nextbest.reporting.stats import z_value

#: Action name of a logged decision that contacted nobody (control arm, "no action").
NO_ACTION = "no_action"


@dataclass(frozen=True)
class LoggedBandit:
    """Logged bandit feedback, validated once.

    Parameters
    ----------
    action
        Index of the logged action per round, in ``[0, n_actions)``.
    reward
        Observed reward per round (conversion 0/1, revenue, ...).
    pscore
        Probability the logging policy gave the logged action, in ``(0, 1]``.
    n_actions
        Size of the action set.
    action_names
        Optional names, ``len == n_actions``.
    """

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_actions: int
    action_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        action = np.asarray(self.action)
        reward = np.asarray(self.reward, dtype=float)
        pscore = np.asarray(self.pscore, dtype=float)
        n = len(action)
        if action.ndim != 1 or reward.shape != (n,) or pscore.shape != (n,):
            raise BadInputError(
                f"action, reward and pscore must be 1-d of one length; got {action.shape}, {reward.shape}, {pscore.shape}"
            )
        if n == 0:
            raise BadInputError("logged feedback is empty: there are no decisions to evaluate on")
        if not np.issubdtype(action.dtype, np.integer) or action.min() < 0 or action.max() >= self.n_actions:
            raise BadInputError(f"action must hold integer indices in [0, {self.n_actions}); encode action names first")
        if not np.all(np.isfinite(reward)):
            raise BadInputError("reward has missing or infinite values; fill them (0 = no conversion)")
        if not np.all((pscore > 0) & (pscore <= 1)):
            raise BadInputError(
                "pscore must lie in (0, 1]: the logging policy must have given every logged action a chance; "
                "drop rounds without a logged propensity"
            )
        if self.action_names is not None and len(self.action_names) != self.n_actions:
            raise BadInputError(f"action_names has {len(self.action_names)} names for {self.n_actions} actions")
        object.__setattr__(self, "action", action.astype(np.int64))
        object.__setattr__(self, "reward", reward)
        object.__setattr__(self, "pscore", pscore)

    @property
    def n_rounds(self) -> int:
        """Number of logged rounds."""
        return len(self.action)


@dataclass(frozen=True)
class PolicyValue:
    """An estimated policy value with its interval."""

    estimator: str
    value: float
    std_error: float
    lower: float
    upper: float
    n_rounds: int
    effective_sample_size: float

    def covers(self, truth: float) -> bool:
        """Whether ``truth`` lies inside the interval."""
        return bool(self.lower <= truth <= self.upper)


def _check_matrix(name: str, m: np.ndarray | None, data: LoggedBandit) -> np.ndarray:
    if m is None:
        raise BadInputError(f"{name} is required by this estimator; pass a reward model's predictions")
    m = np.asarray(m, dtype=float)
    if m.shape != (data.n_rounds, data.n_actions):
        raise BadInputError(f"{name} must have shape (n_rounds, n_actions) = {(data.n_rounds, data.n_actions)}; got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise BadInputError(f"{name} has missing or infinite values")
    return m


def check_action_dist(action_dist: np.ndarray, data: LoggedBandit) -> np.ndarray:
    """Validate the target policy's action probabilities (rows are distributions)."""
    dist = _check_matrix("action_dist", action_dist, data)
    if dist.min() < 0 or not np.allclose(dist.sum(axis=1), 1.0, atol=1e-6):
        raise BadInputError("action_dist rows must be probability distributions: non-negative and summing to 1")
    return dist


class OffPolicyEstimator(ABC):
    """Base class: subclasses define the estimate and its per-round influence values."""

    name: ClassVar[str]
    needs_reward_model: ClassVar[bool] = False

    @abstractmethod
    def _estimate(
        self, data: LoggedBandit, dist: np.ndarray, q_hat: np.ndarray | None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Return (estimate, influence values with mean ~ 0 around it, importance weights)."""

    def estimate_policy_value(
        self, data: LoggedBandit, action_dist: np.ndarray, estimated_rewards: np.ndarray | None = None
    ) -> float:
        """Point estimate of the target policy's mean reward per round."""
        return self.estimate_interval(data, action_dist, estimated_rewards).value

    def estimate_interval(
        self,
        data: LoggedBandit,
        action_dist: np.ndarray,
        estimated_rewards: np.ndarray | None = None,
        confidence: float = 0.95,
    ) -> PolicyValue:
        """Point estimate with a normal-approximation interval.

        Parameters
        ----------
        data
            Logged feedback.
        action_dist
            ``(n_rounds, n_actions)`` target policy probabilities for each round's context.
        estimated_rewards
            ``(n_rounds, n_actions)`` reward-model predictions (DM and DR only).
        confidence
            Interval coverage.
        """
        dist = check_action_dist(action_dist, data)
        q_hat = _check_matrix("estimated_rewards", estimated_rewards, data) if self.needs_reward_model else None
        value, influence, w = self._estimate(data, dist, q_hat)
        n = data.n_rounds
        se = float(np.std(influence, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        z = z_value(confidence)
        ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
        return PolicyValue(self.name, float(value), se, float(value - z * se), float(value + z * se), n, ess)


def _weights(data: LoggedBandit, dist: np.ndarray, max_weight: float | None) -> np.ndarray:
    w = dist[np.arange(data.n_rounds), data.action] / data.pscore
    return np.minimum(w, max_weight) if max_weight is not None else w


@dataclass(frozen=True)
class InverseProbabilityWeighting(OffPolicyEstimator):
    """IPS: ``mean(w * r)`` with ``w = pi(a|x) / pi_0(a|x)``; unbiased, high variance.

    Parameters
    ----------
    max_weight
        Clip importance weights at this value (trades bias for variance); ``None`` = no clipping.
    """

    max_weight: float | None = None
    name: ClassVar[str] = "ipw"

    def _estimate(self, data: LoggedBandit, dist: np.ndarray, q_hat: np.ndarray | None) -> tuple[float, np.ndarray, np.ndarray]:
        w = _weights(data, dist, self.max_weight)
        contrib = w * data.reward
        return float(contrib.mean()), contrib, w


@dataclass(frozen=True)
class SelfNormalizedIPW(OffPolicyEstimator):
    """SNIPS: ``sum(w * r) / sum(w)``; slightly biased, far more stable than IPS."""

    name: ClassVar[str] = "snipw"

    def _estimate(self, data: LoggedBandit, dist: np.ndarray, q_hat: np.ndarray | None) -> tuple[float, np.ndarray, np.ndarray]:
        w = _weights(data, dist, None)
        mean_w = w.mean()
        if mean_w <= 0:
            raise BadInputError("the target policy gives zero probability to every logged action; SNIPW is undefined")
        value = float((w * data.reward).sum() / w.sum())
        # Delta-method influence of a ratio estimator.
        return value, w * (data.reward - value) / mean_w, w


@dataclass(frozen=True)
class DirectMethod(OffPolicyEstimator):
    """DM: the reward model's value of the target policy; its interval ignores model error."""

    name: ClassVar[str] = "dm"
    needs_reward_model: ClassVar[bool] = True

    def _estimate(self, data: LoggedBandit, dist: np.ndarray, q_hat: np.ndarray | None) -> tuple[float, np.ndarray, np.ndarray]:
        assert q_hat is not None
        contrib = (dist * q_hat).sum(axis=1)
        return float(contrib.mean()), contrib, np.ones(data.n_rounds)


@dataclass(frozen=True)
class DoublyRobust(OffPolicyEstimator):
    """DR: the model's value plus an IPS correction of its error on the logged action.

    Unbiased when either the propensities or the reward model are right, and
    usually far tighter than IPS.
    """

    max_weight: float | None = None
    name: ClassVar[str] = "dr"
    needs_reward_model: ClassVar[bool] = True

    def _estimate(self, data: LoggedBandit, dist: np.ndarray, q_hat: np.ndarray | None) -> tuple[float, np.ndarray, np.ndarray]:
        assert q_hat is not None
        w = _weights(data, dist, self.max_weight)
        q_logged = q_hat[np.arange(data.n_rounds), data.action]
        contrib = (dist * q_hat).sum(axis=1) + w * (data.reward - q_logged)
        return float(contrib.mean()), contrib, w


DEFAULT_ESTIMATORS: tuple[OffPolicyEstimator, ...] = (
    InverseProbabilityWeighting(), SelfNormalizedIPW(), DoublyRobust(),
)


@dataclass(frozen=True)
class OffPolicyEvaluation:
    """Run several estimators on one logged dataset.

    Parameters
    ----------
    data
        Logged feedback.
    estimators
        Estimators to run; model-based ones are skipped when no reward model is given.
    """

    data: LoggedBandit
    estimators: Sequence[OffPolicyEstimator] = DEFAULT_ESTIMATORS

    def estimate(
        self,
        action_dist: np.ndarray,
        estimated_rewards: np.ndarray | None = None,
        confidence: float = 0.95,
    ) -> pd.DataFrame:
        """One row per estimator: ``estimator, value, std_error, lower, upper, n_rounds, effective_sample_size``."""
        rows = [
            e.estimate_interval(self.data, action_dist, estimated_rewards, confidence)
            for e in self.estimators
            if estimated_rewards is not None or not e.needs_reward_model
        ]
        return pd.DataFrame([r.__dict__ for r in rows])

    def logged_value(self, confidence: float = 0.95) -> PolicyValue:
        """The logging policy's own value (the plain mean reward), for comparison."""
        r = self.data.reward
        se = float(r.std(ddof=1) / np.sqrt(len(r)))
        z = z_value(confidence)
        return PolicyValue("logged", float(r.mean()), se, float(r.mean() - z * se), float(r.mean() + z * se),
                           len(r), float(len(r)))


# --------------------------------------------------------------------------- a reward model from the log alone
def cross_fitted_action_means(data: LoggedBandit, folds: int = 2, seed: int = 0) -> np.ndarray:
    """A reward model for DR when no other is at hand: each action's mean reward, cross-fitted.

    Round ``i``'s prediction for action ``a`` is the self-normalised IPS mean of
    ``a``'s reward over the rounds of the *other* folds (the logging policy may have
    favoured ``a`` where it pays, so the plain mean would be confounded). Cross-fitting
    keeps a round's own reward out of its prediction, so DR's correction term stays
    centred; DR is unbiased with any reward model when the propensities are right,
    and the better the model the tighter its interval.

    Returns
    -------
    ndarray
        ``(n_rounds, n_actions)``; an action no other fold took gets that fold's mean reward.
    """
    if folds < 2:
        raise BadInputError(f"folds must be at least 2; got {folds}")
    n, k = data.n_rounds, data.n_actions
    fold = np.random.default_rng(seed).permutation(n) % folds
    q_hat = np.empty((n, k))
    w = 1.0 / data.pscore
    for f in range(folds):
        train = fold != f
        if not train.any():
            q_hat[fold == f] = data.reward.mean()
            continue
        num = np.bincount(data.action[train], weights=(w * data.reward)[train], minlength=k)
        den = np.bincount(data.action[train], weights=w[train], minlength=k)
        fallback = float(data.reward[train].mean())
        q_hat[fold == f] = np.where(den > 0, num / np.where(den > 0, den, 1.0), fallback)
    return q_hat


# --------------------------------------------------------------------------- propensity diagnostics
#: Below this, a logged propensity is "tiny": its round weighs more than 100 others.
TINY_PROPENSITY = 0.01
#: Coverage of the per-action weight check: strict, as it runs once per action.
WEIGHT_CHECK_CONFIDENCE = 0.999
_FIX = ("a propensity must be the probability the logging system gave the logged action for that decision, "
        "every random draw included (arm share x choice within the arm)")


def propensity_warnings(
    data: LoggedBandit,
    contexts: np.ndarray | None = None,
    *,
    tiny: float = TINY_PROPENSITY,
) -> list[str]:
    """Plain-language warnings about logged propensities that make off-policy estimates untrustworthy.

    Parameters
    ----------
    data
        Logged feedback.
    contexts
        Optional key per round of what the logging policy saw (same key = same
        situation): then propensities must agree for the same action and sum to at
        most 1 over the actions of one context.
    tiny
        Propensities below this are reported: their rounds dominate IPS.

    Returns
    -------
    list of str
        Empty when nothing looks wrong. Checks: tiny propensities; an action whose
        importance weights ``1{A=a} / p`` average clearly above 1 (impossible when
        the propensities are right: their mean is the share of rounds where ``a``
        was possible), i.e. understated propensities or a log missing rows; and, with
        ``contexts``, disagreeing or over-summing propensities within a context.
    """
    out: list[str] = []
    p, n = data.pscore, data.n_rounds
    names = data.action_names or tuple(str(i) for i in range(data.n_actions))
    small = p < tiny
    if small.any():
        out.append(
            f"{int(small.sum()):,} of {n:,} rounds have a propensity below {tiny:g} (smallest {p.min():.2g}): each "
            f"weighs up to {1 / p.min():,.0f} rounds, so a few decisions drive IPS; trust SNIPS/DR and the effective "
            "sample size, or check those propensities"
        )
    z = z_value(WEIGHT_CHECK_CONFIDENCE)
    for a in range(data.n_actions):
        w = np.where(data.action == a, 1.0 / p, 0.0)
        mean, se = float(w.mean()), float(w.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        if mean - z * se > 1.0:
            out.append(
                f"action {names[a]!r}: its importance weights 1/propensity average {mean:.2f} over all rounds, more than "
                f"the at most 1 that correct propensities give: its propensities look too small (or rounds are missing "
                f"from the log); {_FIX}"
            )
    if contexts is not None:
        frame = pd.DataFrame({"context": np.asarray(contexts), "action": data.action, "p": p})
        spread = frame.groupby(["context", "action"])["p"].agg(["min", "max"])
        differ = spread[(spread["max"] - spread["min"]) > 1e-6 * spread["max"]]
        if len(differ):
            ctx, act = differ.index[0]
            out.append(
                f"{len(differ):,} (context, action) pairs were logged with different propensities for identical "
                f"contexts (e.g. context {ctx!r}, action {names[act]!r}: {differ['min'].iloc[0]:.4g} and "
                f"{differ['max'].iloc[0]:.4g}): the logging policy changed or the propensities are not what it used; "
                f"{_FIX}"
            )
        total = frame.groupby(["context", "action"])["p"].max().groupby(level="context").sum()
        over = total[total > 1 + 1e-6]
        if len(over):
            out.append(
                f"{len(over):,} contexts have propensities of their logged actions summing above 1 (e.g. context "
                f"{over.index[0]!r}: {over.iloc[0]:.3f}): they cannot all be probabilities of one decision; {_FIX}"
            )
    return out


# --------------------------------------------------------------------------- policies
def deterministic_policy(choice: np.ndarray, n_actions: int) -> np.ndarray:
    """One-hot ``action_dist`` for a policy that picks ``choice[i]`` in round ``i``."""
    choice = np.asarray(choice, dtype=np.int64)
    dist = np.zeros((len(choice), n_actions))
    dist[np.arange(len(choice)), choice] = 1.0
    return dist


def epsilon_greedy_policy(scores: np.ndarray, epsilon: float, allowed: np.ndarray | None = None) -> np.ndarray:
    """Best-scoring allowed action with probability ``1 - epsilon``, else uniform over allowed ones."""
    scores = np.asarray(scores, dtype=float)
    allowed = np.ones_like(scores, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    masked = np.where(allowed, scores, -np.inf)
    dist = epsilon * allowed / allowed.sum(axis=1, keepdims=True)
    dist[np.arange(len(scores)), masked.argmax(axis=1)] += 1 - epsilon
    return dist


def softmax_policy(scores: np.ndarray, temperature: float = 1.0, allowed: np.ndarray | None = None) -> np.ndarray:
    """``exp(score / temperature)`` normalised over the allowed actions."""
    scores = np.asarray(scores, dtype=float) / temperature
    allowed = np.ones_like(scores, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    z = np.where(allowed, scores, -np.inf)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- decision log
def bandit_from_outcomes(outcomes: pd.DataFrame, reward: str = "converted") -> LoggedBandit:
    """Logged feedback from the decision log (one round per decision).

    Actions are ``"offer_id/channel"`` for contacted decisions and
    :data:`NO_ACTION` for the rest (control arm, "no action"). The logging
    propensity of a round is the arm's share of its experiment's decisions
    (arms are assigned at random) times the propensity the arm's policy logged
    (``decisions.propensity``; null counts as 1: a deterministic arm policy). For
    rounds that contacted nobody the within-arm probability is 1.

    Parameters
    ----------
    outcomes
        From :func:`nextbest.reporting.outcomes.load_outcomes`.
    reward
        Outcome column used as the reward: ``'converted'`` or ``'revenue'``.
    """
    if reward not in ("converted", "revenue", "responded"):
        raise BadInputError(f"reward must be 'converted', 'revenue' or 'responded'; got {reward!r}")
    contacted = outcomes["contacted"].astype(bool) & outcomes["offer_id"].notna()
    names = np.where(contacted, outcomes["offer_id"].astype(str) + "/" + outcomes["channel"].astype(str), NO_ACTION)
    action_names, action = np.unique(names, return_inverse=True)
    size = outcomes.groupby(["experiment", "arm"])["decision_id"].transform("size")
    total = outcomes.groupby("experiment")["decision_id"].transform("size")
    # A round that contacted nobody took "no action" for sure within its arm; the propensity a
    # control row logs belongs to the action it *would* have sent, not to the one it took.
    within = pd.to_numeric(outcomes["propensity"], errors="coerce").fillna(1.0).where(contacted, 1.0)
    return LoggedBandit(
        action=action,
        reward=outcomes[reward].to_numpy(dtype=float),
        pscore=(size / total * within).to_numpy(),
        n_actions=len(action_names),
        action_names=tuple(str(a) for a in action_names),
    )
