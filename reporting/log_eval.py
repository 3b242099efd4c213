"""Off-policy evaluation of another tool's decision log: ``nextbest evaluate-policy --log FILE``.

A campaign or recommendation tool that logs, for every decision, what it did,
what came of it and the probability it had of doing that (its *propensity*) lets
any other policy be evaluated on its log without deploying it. This module reads
such a log (CSV or Parquet, columns :data:`LOG_COLUMNS`), checks it, joins each
decision to the customer's features as they were at the decision (the latest
feature snapshot at or before its ``ts``, as training does), and estimates with
:mod:`nextbest.reporting.ope` (IPS, SNIPS and DR, with intervals and effective
sample sizes) the value of

* ``champion``: the model's policy, the configured arbitration of
  :func:`~nextbest.reporting.policy_eval.model_choice` over the logged actions;
* ``uniform``: every logged action equally likely, in every decision;
* ``logged``: the tool's own policy (its mean reward, on-policy).

A control arm is optional: decisions that contacted nobody (``arm = control``,
``action = no_action`` or an empty ``offer_id``) make "contact nobody" one of the
actions; without any, the champion chooses among the logged offers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError, NotFoundError
from nextbest.models.scoring import Scorer
from nextbest.reporting.ope import (
    DEFAULT_ESTIMATORS,
    NO_ACTION,
    TINY_PROPENSITY,
    LoggedBandit,
    OffPolicyEvaluation,
    cross_fitted_action_means,
    deterministic_policy,
    propensity_warnings,
)
from nextbest.reporting.policy_eval import logged_pairs, model_choice
from nextbest.tables import read_user_table

#: The log's columns (declared schema): name -> what it holds. Others are ignored.
LOG_COLUMNS: dict[str, str] = {
    "customer_id": "integer customer id, as in the warehouse (required)",
    "ts": "decision time, ISO 8601; a time without zone is UTC (required)",
    "action": "what was done: 'offer_id/channel', or 'no_action' when nobody was contacted "
              "(required unless offer_id and channel are given)",
    "offer_id": "offer of the decision; empty = nobody contacted (instead of action)",
    "channel": "channel of the decision (with offer_id)",
    "reward": "the outcome to maximise: 1/0 for a conversion, or revenue (required; 0 = no response)",
    "propensity": "probability the logging system gave the logged action in that decision, every random draw "
                  "included, in (0, 1] (required; rows without one are left out with a warning)",
    "arm": "experiment arm (optional); rows of arm 'control' contacted nobody, whatever offer they name",
    "context": "key of what the logging policy saw (optional); rows with one key must share propensities",
    "decision_id": "unique id of the decision (optional)",
}
REQUIRED: tuple[str, ...] = ("customer_id", "ts", "reward", "propensity")
CONTROL_ARM = "control"
#: Policies of the table, in display order.
CHAMPION, UNIFORM, LOGGED = "champion", "uniform", "logged"
#: Below this share of the rounds, a policy's effective sample size is reported as too small.
MIN_ESS_SHARE = 0.01


@dataclass(frozen=True)
class DecisionLog:
    """A checked decision log.

    Attributes
    ----------
    frame
        One row per usable decision: ``row`` (1-based row of the file), ``customer_id``,
        ``ts``, ``action``, ``reward``, ``propensity`` and, when given, ``arm``, ``context``,
        ``decision_id``.
    source
        File name, for messages.
    warnings
        What reading found (rows left out for lack of a propensity).
    ignored_columns
        Columns of the file that are not log columns.
    """

    frame: pd.DataFrame
    source: str
    warnings: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()


# --------------------------------------------------------------------------- reading and checking
def _rows(mask: pd.Series | np.ndarray, frame: pd.DataFrame) -> str:
    rows = frame.loc[np.asarray(mask), "row"].tolist()
    listed = ", ".join(str(r) for r in rows[:5])
    return f"row {listed}" if len(rows) == 1 else f"rows {listed}{', ...' if len(rows) > 5 else ''} ({len(rows):,} rows)"


def read_log(path: Path) -> DecisionLog:
    """Read and check a decision log file (CSV or Parquet).

    Raises
    ------
    BadInputError
        Naming the column, the rows (1-based, header excluded) and the fix, for a
        missing column or a value of the wrong kind; nothing is evaluated then.
    """
    path = Path(path)
    raw = read_user_table(path, "the decision log")
    return check_log(raw, path.name)


def _blank(s: pd.Series) -> pd.Series:
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return s.isna()  # typed Parquet columns: only nulls are blank
    return s.isna() | s.astype(str).str.strip().eq("")


def check_log(raw: pd.DataFrame, source: str = "log") -> DecisionLog:
    """Check a decision log table and bring it to :class:`DecisionLog`'s columns (see :func:`read_log`)."""
    raw = raw.rename(columns=lambda c: str(c).strip())
    cols = set(raw.columns)
    missing = [c for c in REQUIRED if c not in cols]
    has_action, has_pair = "action" in cols, {"offer_id", "channel"} <= cols
    if not has_action and not has_pair:
        missing.append("action (or offer_id and channel)")
    if missing:
        raise BadInputError(
            f"{source}: missing column(s) {', '.join(missing)}; a decision log needs customer_id, ts, action "
            "(or offer_id and channel), reward and propensity (see docs/own-data.md)"
        )
    if has_action and "offer_id" in cols:
        raise BadInputError(f"{source}: give either the column action or the columns offer_id and channel, not both")
    if raw.empty:
        raise BadInputError(f"{source}: the log has no rows")
    frame = pd.DataFrame({"row": np.arange(1, len(raw) + 1)}, index=raw.index)
    errors: list[str] = []

    def bad(column: str, mask: pd.Series, problem: str, fix: str) -> None:
        if mask.any():
            errors.append(f"column {column}: {_rows(mask, frame)} {problem}; {fix}")

    ids = pd.to_numeric(raw["customer_id"], errors="coerce")
    bad("customer_id", _blank(raw["customer_id"]), "empty", "every decision needs the customer's integer id")
    bad("customer_id", ~_blank(raw["customer_id"]) & (ids.isna() | (ids % 1 != 0)), "not an integer",
        "use the warehouse's integer customer ids")
    frame["customer_id"] = ids.fillna(0).astype("int64") if not errors else 0

    ts = pd.to_datetime(raw["ts"], errors="coerce", utc=True, format="mixed")
    bad("ts", ts.isna(), "not a timestamp", "write the decision time as ISO 8601, e.g. 2024-06-01T09:30:00")
    frame["ts"] = ts.dt.tz_convert(None)

    reward = pd.to_numeric(raw["reward"], errors="coerce")
    bad("reward", _blank(raw["reward"]), "empty", "fill 0 for a decision without response")
    bad("reward", ~_blank(raw["reward"]) & (reward.isna() | ~np.isfinite(reward.fillna(0))), "not a number",
        "give a number (1/0 for a conversion, or revenue)")
    frame["reward"] = reward.astype(float)

    p_blank = _blank(raw["propensity"])
    p = pd.to_numeric(raw["propensity"], errors="coerce")
    bad("propensity", ~p_blank & p.isna(), "not a number", "give the probability as a number in (0, 1]")
    bad("propensity", p.notna() & ((p <= 0) | (p > 1)), "outside (0, 1]",
        "a propensity is the probability the logging system gave the logged action; a logged action had one above 0")
    frame["propensity"] = p.astype(float)

    if has_action:
        action = raw["action"].astype(str).str.strip()
        bad("action", _blank(raw["action"]), "empty", f"write offer_id/channel, or {NO_ACTION} when nobody was contacted")
        malformed = ~_blank(raw["action"]) & (action != NO_ACTION) & ~action.str.fullmatch(r"[^/\s]+/[^/\s]+")
        bad("action", malformed, "not offer_id/channel", f"write offer_id/channel (e.g. spring_sale/email) or {NO_ACTION}")
    else:
        offer, channel = raw["offer_id"].astype(str).str.strip(), raw["channel"].astype(str).str.strip()
        bad("channel", ~_blank(raw["offer_id"]) & _blank(raw["channel"]), "empty where offer_id is set",
            "give the channel of every contact (an empty offer_id means nobody was contacted)")
        action = pd.Series(np.where(_blank(raw["offer_id"]), NO_ACTION, offer + "/" + channel), index=raw.index)
    for optional in ("arm", "context", "decision_id"):
        if optional in cols:
            frame[optional] = raw[optional].astype(str).str.strip().where(~_blank(raw[optional]), None)
    if "arm" in frame:
        action = action.where(frame["arm"] != CONTROL_ARM, NO_ACTION)
    frame["action"] = action
    if "decision_id" in frame:
        dup = frame["decision_id"].notna() & frame["decision_id"].duplicated(keep=False)
        bad("decision_id", dup, "repeat a decision id", "give every decision a unique id, or drop the column")
    if errors:
        raise BadInputError(f"{source}: invalid decision log, nothing was evaluated:\n  " + "\n  ".join(errors))

    warnings = []
    if p_blank.any():
        if p_blank.all():
            raise BadInputError(
                f"{source}: column propensity is empty in every row; off-policy evaluation needs the probability the "
                "logging system gave each logged action (log it, or export it from the tool)"
            )
        warnings.append(
            f"{int(p_blank.sum()):,} of {len(raw):,} rows have no propensity ({_rows(p_blank, frame)}) and were left "
            "out: without the probability of the logged action a decision cannot be reweighted"
        )
    ignored = tuple(c for c in raw.columns if c not in LOG_COLUMNS)
    return DecisionLog(frame.loc[~p_blank].reset_index(drop=True), source, tuple(warnings), ignored)


# --------------------------------------------------------------------------- features as of each decision
@dataclass(frozen=True)
class ChampionChoices:
    """The champion's action in every logged decision it could be scored for.

    Attributes
    ----------
    rounds
        Positions in :attr:`DecisionLog.frame` of the decisions with a feature
        snapshot at or before their ``ts``, ascending.
    actions
        The action the champion chooses in each of them (an action name of the log).
    model_version
        The champion's version.
    """

    rounds: np.ndarray
    actions: np.ndarray
    model_version: str = "unknown"


#: Candidate rows (decisions x offer/channel pairs) scored at once: bounds memory on long logs.
MAX_CANDIDATE_ROWS = 200_000


def champion_choices(
    con: duckdb.DuckDBPyConnection,
    config: NextbestConfig,
    scorer: Scorer,
    log: DecisionLog,
    *,
    max_candidate_rows: int = MAX_CANDIDATE_ROWS,
) -> ChampionChoices:
    """What the champion would have done in each logged decision, from the features of that moment.

    Each decision gets the customer's latest feature snapshot at or before its ``ts``
    (``ASOF JOIN``, as :func:`nextbest.training.dataset.build_training_set` does) and
    each candidate offer its offer history as of then (the registry default for an
    offer never shown); the champion then chooses among the logged actions by
    :func:`~nextbest.reporting.policy_eval.model_choice`. Decisions without a snapshot
    (a customer the warehouse does not know, or a decision before the first snapshot)
    get no choice. The log is processed in blocks of at most ``max_candidate_rows``
    candidates, so memory stays bounded whatever its length.
    """
    from nextbest.features.registry import feature_defs, offer_history_features
    from nextbest.training.dataset import ACTION_COLUMNS, OFFER_HISTORY_TABLE, SNAPSHOT_TABLE
    from nextbest.warehouse.engine import as_engine

    engine = as_engine(con)

    names = tuple(getattr(scorer, "feature_names_", ()))
    if not names:
        raise BadInputError("the model does not list its input columns (feature_names_); retrain it with `nextbest train`")
    if not engine.has_table(SNAPSHOT_TABLE):
        raise NotFoundError(f"no {SNAPSHOT_TABLE} table; run `nextbest features build` first")
    history_defs = {f.name: f.default for f in offer_history_features(feature_defs(config))}
    history = {n: history_defs[n] for n in names if n in history_defs}
    features = [n for n in names if n not in history and n not in ACTION_COLUMNS]
    absent = [f for f in features if f not in set(engine.columns(SNAPSHOT_TABLE))]
    if absent:
        raise BadInputError(f"{SNAPSHOT_TABLE} lacks the model's column(s) {absent}; rebuild with `nextbest features build`")
    # Without the table (or with an older one) every candidate gets the never-shown defaults.
    history_table = OFFER_HISTORY_TABLE if (
        history and engine.has_table(OFFER_HISTORY_TABLE) and set(history) <= set(engine.columns(OFFER_HISTORY_TABLE))
    ) else None

    base = log.frame[["customer_id", "ts"]].assign(round=np.arange(len(log.frame)))
    con.register("nb_log_rounds", base)
    try:
        quoted = "".join(f', s."{f}"' for f in features)
        rows = con.execute(
            f"""SELECT l."round", l.customer_id, l.ts{quoted}
                FROM nb_log_rounds l ASOF JOIN {SNAPSHOT_TABLE} s
                  ON l.customer_id = s.customer_id AND l.ts >= s.as_of
                ORDER BY l."round" """
        ).df()
    finally:
        con.unregister("nb_log_rounds")
    # The champion chooses among the actions of the decisions it is evaluated on.
    actions = sorted(set(log.frame["action"].iloc[rows["round"]]))
    pairs = logged_pairs(config, actions)
    block = max(1, max_candidate_rows // len(pairs))
    chosen: list[np.ndarray] = []
    for start in range(0, len(rows), block):
        part = rows.iloc[start:start + block].reset_index(drop=True)
        candidates = pd.concat([part.assign(offer_id=o, channel=c) for o, c in pairs], ignore_index=True)
        for h, value in _offer_history(con, candidates, history, history_table).items():
            candidates[h] = value
        choice, _ = model_choice(part, scorer, config, actions, candidates=candidates)
        chosen.append(np.asarray(actions, dtype=object)[choice])
    return ChampionChoices(
        rounds=rows["round"].to_numpy(dtype=np.int64),
        actions=np.concatenate(chosen) if chosen else np.array([], dtype=object),
        model_version=str(getattr(scorer, "model_version", "unknown")),
    )


def _offer_history(
    con: duckdb.DuckDBPyConnection, candidates: pd.DataFrame, history: dict[str, Any], table: str | None
) -> dict[str, np.ndarray]:
    """Each candidate's offer-history columns as of its decision (defaults where there is none)."""
    if not history:
        return {}
    if table is None:
        return {h: np.full(len(candidates), default) for h, default in history.items()}
    keys = candidates[["customer_id", "offer_id", "ts"]].assign(k=np.arange(len(candidates)))
    con.register("nb_log_candidates", keys)
    try:
        cols = ", ".join(f'oh."{h}"' for h in history)
        found = con.execute(
            f"""SELECT c.k, {cols} FROM nb_log_candidates c ASOF LEFT JOIN {table} oh
                ON c.customer_id = oh.customer_id AND c.offer_id = oh.offer_id AND c.ts >= oh.as_of
                ORDER BY c.k"""
        ).df()
    finally:
        con.unregister("nb_log_candidates")
    return {h: found[h].fillna(default).to_numpy() for h, default in history.items()}


# --------------------------------------------------------------------------- evaluating
@dataclass(frozen=True)
class LogEvaluation:
    """The estimates and what to keep in mind reading them.

    Attributes
    ----------
    table
        One row per policy and estimator: ``policy, estimator, value, std_error,
        lower, upper, n_rounds, effective_sample_size``.
    warnings
        Missing, tiny or inconsistent propensities, rounds left out, small
        effective sample sizes.
    meta
        Source, rounds, actions, control arm, model version, the champion's action shares.
    choices
        Policy name -> ``(n_rounds, n_actions)`` action probabilities evaluated
        (the rows of the evaluated rounds, in log order).
    """

    table: pd.DataFrame
    warnings: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        policies: dict[str, dict[str, Any]] = {}
        for r in self.table.itertuples(index=False):
            policies.setdefault(r.policy, {})[r.estimator] = {
                k: float(getattr(r, k)) for k in ("value", "std_error", "lower", "upper", "effective_sample_size")
            }
        return {"meta": self.meta, "policies": policies, "warnings": list(self.warnings)}


def evaluate_log(
    log: DecisionLog,
    champion: ChampionChoices | None = None,
    *,
    confidence: float = 0.95,
    tiny: float = TINY_PROPENSITY,
    seed: int = 0,
) -> LogEvaluation:
    """Estimate the champion's, the uniform and the logged policy's value on a decision log.

    Parameters
    ----------
    log
        From :func:`read_log`.
    champion
        :func:`champion_choices` on this log; the decisions it has no choice for are
        left out of every policy's estimate. ``None`` evaluates the uniform and logged
        policies only.
    confidence
        Interval coverage.
    tiny
        Propensities below this are reported.
    seed
        Seed of the cross-fitting folds of DR's reward model.
    """
    warnings = list(log.warnings)
    frame = log.frame
    if champion is not None:
        left_out = len(frame) - len(champion.rounds)
        if len(champion.rounds) == 0:
            raise NotFoundError(
                f"{log.source}: no logged decision has a feature snapshot at or before its ts (customers unknown to "
                "the warehouse, or decisions before the first snapshot); import the customers' data and build "
                "features, or evaluate the baselines only (--baselines-only)"
            )
        if left_out:
            warnings.append(
                f"{left_out:,} of {len(frame):,} decisions have no feature snapshot at or before their ts (customer "
                "unknown to the warehouse, or decided before the first snapshot) and were left out of every estimate"
            )
        frame = frame.iloc[champion.rounds].reset_index(drop=True)
    actions = sorted(set(frame["action"]))
    action_index = pd.Index(actions)
    data = LoggedBandit(
        action=action_index.get_indexer(frame["action"]),
        reward=frame["reward"].to_numpy(dtype=float),
        pscore=frame["propensity"].to_numpy(dtype=float),
        n_actions=len(actions),
        action_names=tuple(actions),
    )
    contexts = frame["context"].to_numpy() if "context" in frame else (
        frame["customer_id"].astype(str) + "@" + frame["ts"].astype(str)).to_numpy()
    warnings += propensity_warnings(data, contexts, tiny=tiny)

    n = data.n_rounds
    policies: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {
        "source": log.source, "rounds": n, "actions": actions, "control_arm": NO_ACTION in actions,
        "confidence": confidence, "estimators": [e.name for e in DEFAULT_ESTIMATORS],
        "reward_model": "per-action IPS-weighted mean reward, 2-fold cross-fitted (for DR)",
        "ignored_columns": list(log.ignored_columns),
    }
    if champion is not None:
        choice = action_index.get_indexer(champion.actions)
        policies[CHAMPION] = deterministic_policy(choice, len(actions))
        meta["model_version"] = champion.model_version
        meta["champion_action_shares"] = {a: float((choice == k).mean()) for k, a in enumerate(actions)}
        if NO_ACTION not in actions:
            meta["champion_note"] = ("no logged decision contacted nobody, so the champion picks its best logged "
                                     "action in every decision")
    policies[UNIFORM] = np.full((n, len(actions)), 1.0 / len(actions))
    q_hat = cross_fitted_action_means(data, seed=seed)
    ope = OffPolicyEvaluation(data, DEFAULT_ESTIMATORS)
    parts = []
    for name, dist in policies.items():
        t = ope.estimate(dist, estimated_rewards=q_hat, confidence=confidence)
        parts.append(t.assign(policy=name))
        ess = float(t["effective_sample_size"].iloc[0])
        if ess < max(MIN_ESS_SHARE * n, 30):
            warnings.append(
                f"the {name} policy's estimates rest on an effective sample of {ess:,.0f} of {n:,} decisions: it rarely "
                "agrees with what was logged, so its intervals are wide and IPS is unstable"
            )
    logged = ope.logged_value(confidence)
    parts.append(pd.DataFrame([logged.__dict__]).assign(policy=LOGGED, estimator="on-policy"))
    table = pd.concat(parts, ignore_index=True)
    columns = ["policy", "estimator", "value", "std_error", "lower", "upper", "n_rounds", "effective_sample_size"]
    return LogEvaluation(table[columns], tuple(warnings), meta, policies)


__all__ = [
    "CHAMPION", "LOGGED", "LOG_COLUMNS", "UNIFORM", "ChampionChoices", "DecisionLog", "LogEvaluation", "champion_choices",
    "check_log", "evaluate_log", "read_log",
]
