"""Off-policy evaluation of targeting policies on a randomized campaign log.

When a campaign's actions were assigned at random with known probabilities (the
``decisions.propensity`` of a randomized experiment), the value of *any* other
policy can be estimated without deploying it: keep the logged decisions where
the policy agrees with what was done and weight each by the inverse of the
probability it had of being done (inverse propensity weighting; Dudik, Langford
and Li, "Doubly Robust Policy Evaluation and Learning", ICML 2011). The
estimators and the propensity convention (arm share x within-arm propensity) are
:mod:`nextbest.reporting.ope`'s; this module adds what a marketer compares:

* the policies: contact nobody, each single action for everyone, uniformly at
  random, and the *model policy*, which picks per customer the action of highest
  expected incremental value (uplift x value x lever - contact cost, the
  configured arbitration) or nobody when none pays for itself;
* the metrics: responses (visits), conversions, revenue (spend) and profit
  (revenue minus the contact cost of the action), per decision;
* the held-out decisions: the test part of the trainer's split, so the model
  policy is judged on customers its model never saw.

Nothing here is specific to a data set; ``examples/hillstrom`` runs it on the
Hillstrom e-mail experiment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError, NotFoundError
from nextbest.models.scoring import Scorer
from nextbest.reporting.ope import (
    NO_ACTION,
    InverseProbabilityWeighting,
    LoggedBandit,
    bandit_from_outcomes,
    deterministic_policy,
)
from nextbest.reporting.stats import z_value

#: Reward metrics of the policy table, in display order.
METRICS: tuple[str, ...] = ("visits", "conversions", "spend", "profit")
#: Name of the model policy in the table.
MODEL_POLICY = "model"
NOBODY = "nobody"
RANDOM = "random"


# --------------------------------------------------------------------------- the log
def load_logged(con: duckdb.DuckDBPyConnection, config: NextbestConfig, experiment: str) -> pd.DataFrame:
    """The experiment's decisions with their outcomes in the response window.

    Returns
    -------
    DataFrame
        One row per decision: ``decision_id, customer_id, ts, offer_id, channel,
        arm, experiment, propensity, contacted, visits, conversions, spend``
        (``visits``: a visit or conversion was recorded; ``spend``: conversion
        revenue), ordered by time.

    Raises
    ------
    BadInputError
        The experiment is not in the log.
    """
    known = [r[0] for r in con.execute("SELECT DISTINCT experiment FROM decisions WHERE experiment IS NOT NULL").fetchall()]
    if experiment not in known:
        raise BadInputError(
            f"experiment {experiment!r} is not in the decisions table; known: {', '.join(sorted(known)) or 'none'}"
        )
    window = int(config.training.response_window_days)
    return con.execute(
        """
        WITH d AS (SELECT * FROM decisions WHERE experiment = $experiment),
        r AS (
            SELECT r.decision_id,
                   max((r.outcome IN ('visit', 'conversion'))::INTEGER) AS visits,
                   max((r.outcome = 'conversion')::INTEGER) AS conversions,
                   sum(CASE WHEN r.outcome = 'conversion' THEN coalesce(r.revenue, 0) ELSE 0 END) AS spend
            FROM responses r JOIN d USING (decision_id)
            WHERE r.ts >= d.ts AND r.ts < d.ts + to_days($window)
            GROUP BY r.decision_id
        )
        SELECT d.decision_id, d.customer_id, d.ts, d.offer_id, d.channel, coalesce(d.arm, 'unassigned') AS arm,
               d.experiment, d.propensity, coalesce(d.contacted, false) AS contacted,
               coalesce(r.visits, 0) AS visits, coalesce(r.conversions, 0) AS conversions,
               coalesce(r.spend, 0.0) AS spend
        FROM d LEFT JOIN r USING (decision_id)
        ORDER BY d.ts, d.decision_id
        """,
        {"experiment": experiment, "window": window},
    ).df()


def held_out(ts: pd.Series, test_share: float) -> np.ndarray:
    """Mask of the latest ``test_share`` of decisions: the test part of the trainer's time split."""
    from nextbest.training.dataset import time_split

    if not 0 < test_share < 1:
        raise BadInputError(f"--test-share must lie strictly between 0 and 1; got {test_share}")
    # The trainer's validation part is irrelevant here; any share below the test one keeps the same test set.
    return time_split(ts, min(0.05, (1 - test_share) / 2), test_share).test


def action_costs(config: NextbestConfig, actions: Sequence[str]) -> np.ndarray:
    """Contact cost of each action name (``offer/channel``; nothing for :data:`NO_ACTION`)."""
    costs = []
    for name in actions:
        if name == NO_ACTION:
            costs.append(0.0)
            continue
        channel = name.rpartition("/")[2]
        try:
            costs.append(config.channel(channel).cost_per_contact)
        except KeyError:
            raise BadInputError(f"logged action {name!r} uses channel {channel!r}, which channels.yaml lacks") from None
    return np.asarray(costs, dtype=float)


# --------------------------------------------------------------------------- policies
def candidate_pairs(config: NextbestConfig) -> list[tuple[str, str]]:
    """Every (offer, channel) the catalogue allows, in config order."""
    return [(o.id, ch) for o in config.offers.offers for ch in o.channels]


def incremental_values(scores: pd.DataFrame, config: NextbestConfig) -> np.ndarray:
    """Expected incremental value of contacting, per scored candidate, by the configured arbitration.

    ``uplift x value`` (the scorer's value of a response; scaled by the offer's
    margin / value ratio when ``arbitration.value_field`` is ``margin``), times
    the offer's lever and minus the channel cost when the arbitration says so.
    """
    arb = config.policy.arbitration
    offers = {o.id: o for o in config.offers.offers}
    offer_ids = scores["offer_id"].to_numpy()
    value = scores["value"].to_numpy(dtype=float)
    if arb.value_field == "margin":
        ratio = {k: (o.margin / o.value if o.value else 0.0) for k, o in offers.items()}
        value = value * pd.Series(offer_ids).map(ratio).to_numpy(dtype=float)
    ev = scores["uplift"].to_numpy(dtype=float) * value
    if arb.include_lever:
        ev = ev * pd.Series(offer_ids).map({k: o.lever for k, o in offers.items()}).to_numpy(dtype=float)
    if arb.include_cost:
        ev = ev - scores["channel"].map({c.id: c.cost_per_contact for c in config.channels.channels}).to_numpy(dtype=float)
    return ev


def logged_pairs(config: NextbestConfig, actions: Sequence[str]) -> list[tuple[str, str]]:
    """The (offer, channel) candidates of the catalogue among the logged action names, in config order."""
    pairs = [p for p in candidate_pairs(config) if f"{p[0]}/{p[1]}" in actions]
    if not pairs:
        raise BadInputError(
            f"none of the logged actions {list(actions)[:10]} is an offer/channel of the configuration; "
            "configure those offers (`nextbest offers import`) or evaluate the baselines only"
        )
    return pairs


def model_choice(
    rows: pd.DataFrame,
    scorer: Scorer,
    config: NextbestConfig,
    actions: Sequence[str],
    *,
    candidates: pd.DataFrame | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The model policy's action per row: the best candidate, or nobody below the threshold.

    Parameters
    ----------
    rows
        One row per decision with the model's feature columns (and any others).
    scorer
        The trained model.
    actions
        Action names of the logged bandit (``offer/channel`` and :data:`NO_ACTION`).
        Without :data:`NO_ACTION` (no logged decision contacted nobody, so "nobody"
        cannot be evaluated) the model picks its best logged action, whatever its value.
    candidates
        The rows to score, one block of ``len(rows)`` per pair of :func:`logged_pairs`
        in its order (e.g. with each candidate's own offer history); default ``rows``
        with ``offer_id`` and ``channel`` set per block.

    Returns
    -------
    choice, values
        Index into ``actions`` per row, and the expected incremental value of
        every action (columns = ``actions``; :data:`NO_ACTION` is 0).
    """
    pairs = logged_pairs(config, actions)
    n = len(rows)
    if candidates is None:
        candidates = pd.concat([rows.assign(offer_id=o, channel=c) for o, c in pairs], ignore_index=True)
    elif len(candidates) != n * len(pairs):
        raise ValueError(f"candidates has {len(candidates)} rows; expected {n} x {len(pairs)} pairs")
    candidates = candidates.reset_index(drop=True)
    scores = scorer.score(candidates)
    ev = incremental_values(pd.concat([candidates[["offer_id", "channel"]], scores], axis=1), config)
    values = pd.DataFrame(0.0, index=rows.index, columns=list(actions))
    for k, (o, c) in enumerate(pairs):
        values[f"{o}/{c}"] = ev[k * n:(k + 1) * n]
    names = [f"{o}/{c}" for o, c in pairs]
    best = values[names].to_numpy()
    pick = best.argmax(axis=1)
    chosen = np.asarray(names)[pick]
    if NO_ACTION in actions:
        threshold = config.policy.arbitration.min_expected_value
        chosen = np.where(best[np.arange(n), pick] > threshold, chosen, NO_ACTION)
    return pd.Index(actions).get_indexer(chosen), values


def baseline_policies(actions: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """Nobody, each single action for everyone, and uniformly random over all actions."""
    policies: dict[str, np.ndarray] = {}
    if NO_ACTION in actions:
        policies[NOBODY] = deterministic_policy(np.full(n, list(actions).index(NO_ACTION)), len(actions))
    for k, name in enumerate(actions):
        if name != NO_ACTION:
            policies[f"everyone {name}"] = deterministic_policy(np.full(n, k), len(actions))
    policies[RANDOM] = np.full((n, len(actions)), 1.0 / len(actions))
    return policies


# --------------------------------------------------------------------------- evaluation
def evaluate(
    bandit: LoggedBandit,
    rewards: Mapping[str, np.ndarray],
    policies: Mapping[str, np.ndarray],
    *,
    confidence: float = 0.95,
    reference: str | None = None,
) -> pd.DataFrame:
    """IPS value of each policy on each reward, with intervals, and the difference to a reference.

    Parameters
    ----------
    bandit
        Logged actions and propensities (its own ``reward`` is ignored).
    rewards
        Metric name -> reward per logged round.
    policies
        Policy name -> ``(n_rounds, n_actions)`` action probabilities.
    confidence
        Interval coverage.
    reference
        Policy to compare with: ``diff``, ``diff_lower``, ``diff_upper`` are the
        paired IPS difference (same rounds, so far tighter than two intervals).

    Returns
    -------
    DataFrame
        One row per policy and metric: ``policy, metric, value, std_error, lower,
        upper, effective_sample_size, contact_share`` and, with a reference,
        the difference columns.
    """
    estimator = InverseProbabilityWeighting()
    rows = np.arange(bandit.n_rounds)
    no_action = (bandit.action_names or ()).index(NO_ACTION) if NO_ACTION in (bandit.action_names or ()) else None
    z = z_value(confidence)
    out = []
    for metric, reward in rewards.items():
        data = LoggedBandit(bandit.action, np.asarray(reward, dtype=float), bandit.pscore, bandit.n_actions,
                            bandit.action_names)
        terms = {name: dist[rows, data.action] / data.pscore * data.reward for name, dist in policies.items()}
        for name, dist in policies.items():
            v = estimator.estimate_interval(data, dist, confidence=confidence)
            row: dict[str, Any] = {
                "policy": name, "metric": metric, "value": v.value, "std_error": v.std_error,
                "lower": v.lower, "upper": v.upper, "effective_sample_size": v.effective_sample_size,
                "contact_share": 1.0 - (float(dist[:, no_action].mean()) if no_action is not None else 0.0),
            }
            if reference is not None:
                d = terms[name] - terms[reference]
                se = float(d.std(ddof=1) / np.sqrt(len(d)))
                row |= {"diff": float(d.mean()), "diff_lower": float(d.mean() - z * se),
                        "diff_upper": float(d.mean() + z * se)}
            out.append(row)
    return pd.DataFrame(out)


@dataclass(frozen=True)
class PolicyEvaluation:
    """The policy table and how it was made.

    Attributes
    ----------
    table
        :func:`evaluate`'s long table.
    meta
        Experiment, held-out decisions, split, model version, costs, currency.
    """

    table: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def wide(self) -> pd.DataFrame:
        """One row per policy: contact share and ``metric``, ``metric_lower``, ``metric_upper`` per metric."""
        t = self.table
        out = t.pivot(index="policy", columns="metric", values=["value", "lower", "upper"])
        cols = {}
        for m in [m for m in METRICS if m in t["metric"].unique()]:
            cols[m] = out[("value", m)]
            cols[f"{m}_lower"] = out[("lower", m)]
            cols[f"{m}_upper"] = out[("upper", m)]
        wide = pd.DataFrame(cols)
        wide.insert(0, "contact_share", t.groupby("policy")["contact_share"].first())
        return wide.loc[list(dict.fromkeys(t["policy"]))]

    def as_dict(self) -> dict[str, Any]:
        policies = []
        for name, g in self.table.groupby("policy", sort=False):
            entry: dict[str, Any] = {"policy": name, "contact_share": float(g["contact_share"].iloc[0])}
            for _, r in g.iterrows():
                entry[r["metric"]] = {k: float(r[k]) for k in ("value", "lower", "upper", "std_error")}
                if "diff" in r:
                    entry[r["metric"]] |= {f"vs_reference_{k}": float(r[k]) for k in ("diff", "diff_lower", "diff_upper")}
            policies.append(entry)
        return {"meta": self.meta, "policies": policies}


def model_rows(con: duckdb.DuckDBPyConnection, config: NextbestConfig, scorer: Scorer, experiment: str) -> pd.DataFrame:
    """The experiment's decisions with the point-in-time features the model reads.

    Uses the trainer's own training-set builder, so features are joined exactly as
    in training (latest snapshot at or before each decision).
    """
    from nextbest.features.registry import feature_defs, offer_history_features
    from nextbest.training.dataset import ACTION_COLUMNS, build_training_set

    names = tuple(getattr(scorer, "feature_names_", ()))
    if not names:
        raise BadInputError("the model does not list its input columns (feature_names_); retrain it with `nextbest train`")
    history_defs = {f.name: f.default for f in offer_history_features(feature_defs(config))}
    history = {n: history_defs[n] for n in names if n in history_defs}
    features = tuple(n for n in names if n not in history and n not in ACTION_COLUMNS)
    ts = build_training_set(con, config, features=features, offer_history=history, experiments=(experiment,))
    return ts.frame


def evaluate_experiment(
    con: duckdb.DuckDBPyConnection,
    config: NextbestConfig,
    scorer: Scorer | None,
    experiment: str,
    *,
    test_share: float | None = None,
    confidence: float = 0.95,
    reference: str | None = None,
) -> PolicyEvaluation:
    """Evaluate the baselines and (with a scorer) the model policy on the held-out decisions.

    Parameters
    ----------
    con
        Warehouse connection.
    config
        Costs, arbitration, response window and the default ``test_share``.
    scorer
        The trained model (``nextbest.models.registry.load_scorer``); ``None``
        evaluates the baselines only.
    experiment
        A randomized experiment of the decisions log.
    test_share
        Share of the latest decisions held out (default ``training.test_share``,
        the trainer's test split).
    reference
        Policy the others are compared with (default: the best single action for
        everyone by profit).
    """
    logged = load_logged(con, config, experiment)
    if scorer is not None:
        features = model_rows(con, config, scorer, experiment)
        logged = logged.merge(features.drop(columns=[c for c in features.columns if c in logged.columns and
                                                     c != "decision_id"] + ["label", "revenue"], errors="ignore"),
                              on="decision_id", how="inner")
    if logged.empty:
        raise NotFoundError(f"experiment {experiment!r} has no decisions with features; build feature snapshots first")
    share = config.training.test_share if test_share is None else test_share
    test = logged.loc[held_out(logged["ts"], share)].reset_index(drop=True)
    bandit = bandit_from_outcomes(test.rename(columns={"conversions": "converted"}), reward="converted")
    actions = list(bandit.action_names or ())
    cost = action_costs(config, actions)[bandit.action]
    rewards = {
        "visits": test["visits"].to_numpy(dtype=float),
        "conversions": test["conversions"].to_numpy(dtype=float),
        "spend": test["spend"].to_numpy(dtype=float),
        "profit": test["spend"].to_numpy(dtype=float) - cost,
    }
    policies = baseline_policies(actions, len(test))
    meta: dict[str, Any] = {
        "experiment": experiment, "test_share": share, "held_out_decisions": len(test),
        "test_from": str(test["ts"].min()), "actions": actions, "currency": config.channels.currency,
        "action_cost": dict(zip(actions, action_costs(config, actions).tolist(), strict=True)),
        "estimator": "ipw", "confidence": confidence,
    }
    if scorer is not None:
        choice, values = model_choice(test, scorer, config, actions)
        policies[MODEL_POLICY] = deterministic_policy(choice, len(actions))
        meta["model_version"] = getattr(scorer, "model_version", "unknown")
        meta["model_action_shares"] = {a: float((choice == k).mean()) for k, a in enumerate(actions)}
    if reference is None:
        singles = [p for p in policies if p.startswith("everyone ")]
        profit = {p: float((policies[p][np.arange(len(test)), bandit.action] / bandit.pscore * rewards["profit"]).mean())
                  for p in singles}
        reference = max(profit, key=profit.get) if profit else NOBODY
    elif reference not in policies:
        raise BadInputError(f"--reference {reference!r} is not one of the policies {list(policies)}")
    meta["reference"] = reference
    table = evaluate(bandit, rewards, policies, confidence=confidence, reference=reference)
    return PolicyEvaluation(table, meta)


def verdict(evaluation: PolicyEvaluation, metric: str = "profit") -> str:
    """A plain-language verdict for a marketer: does targeting beat the reference once costs count?

    Honest by construction: a difference whose interval contains zero is called
    *not shown*, however large the point estimate.
    """
    t = evaluation.table[evaluation.table["metric"] == metric].set_index("policy")
    ref = evaluation.meta.get("reference", NOBODY)
    cur = evaluation.meta.get("currency", "")
    n = evaluation.meta.get("held_out_decisions", 0)
    level = f"{evaluation.meta.get('confidence', 0.95):.0%}"
    best = t["value"].idxmax()
    lines = [f"On {n:,} held-out customers, {metric} per customer ({cur}, after contact costs): "
             + "; ".join(f"{p} {r.value:.3f} [{r.lower:.3f}, {r.upper:.3f}]" for p, r in t.iterrows()) + "."]
    if MODEL_POLICY in t.index and "diff" in t.columns:
        m = t.loc[MODEL_POLICY]
        diff = f"{m['diff']:+.3f} {cur} per customer ({level} interval {m['diff_lower']:+.3f} to {m['diff_upper']:+.3f})"
        share = m["contact_share"]
        if m["diff_lower"] > 0:
            lines.append(f"Targeting with the model beats '{ref}' by {diff}, contacting {share:.0%} of customers: use it.")
        elif m["diff_upper"] < 0:
            lines.append(f"Targeting with the model does worse than '{ref}' by {diff}: keep '{ref}'.")
        else:
            lines.append(
                f"Targeting with the model differs from '{ref}' by {diff}: not shown to be better or worse. "
                f"It contacts {share:.0%} of customers, so if it is as good it saves contacts, but the data cannot "
                f"tell the two apart; '{ref}' is the simpler choice until a larger test says otherwise."
            )
    if NOBODY in t.index and "diff" in t.columns and ref != NOBODY:
        nb = t.loc[NOBODY]
        if nb["diff_upper"] < 0:
            lines.append(f"Contacting pays: '{ref}' earns {-nb['diff']:.3f} {cur} per customer more than contacting nobody "
                         f"({level} interval {-nb['diff_upper']:.3f} to {-nb['diff_lower']:.3f}).")
        else:
            lines.append(f"'{ref}' is not shown to earn more than contacting nobody once costs count.")
    lines.append(f"Highest point estimate: {best}.")
    return " ".join(lines)
