"""The decision engine: one code path for the scoring service and batch campaigns.

:meth:`DecisionEngine.decide` ranks a whole batch at once:

1. candidates   every customer × every (offer, channel) pair valid at ``at``;
2. rules        consent, reachability, eligibility, segments, journey stage and the
                contact policy remove pairs (:mod:`~nextbest.decisioning.candidates`);
3. scoring      the surviving rows go to the customer's arm's :class:`Scorer`;
4. arbitration  EV = (uplift or P) × value × lever × boost − cost;
5. selection    exploration draws one action per customer and logs its propensity;
                daily channel capacities and offer volume caps are then allocated
                by EV, and customers who lose a saturated channel choose again;
6. output       one decision row per customer (``decisions`` table) and the top-k
                ranked actions with their terms, reasons and suppressions.

:meth:`DecisionEngine.rank` wraps it into :class:`RankResponse` documents.
"""

from __future__ import annotations

import datetime as dt
import os
import string
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.decisioning.candidates import (
    CODE, REASONS, PairGrid, PolicyArrays, Targeting, contact_blocked, customer_facts, suppression_codes,
)
from nextbest.decisioning.documents import Action, Context, Personalisation, RankResponse, Suppressed
from nextbest.decisioning.hashing import key_of, uniform
from nextbest.decisioning.history import ContactHistory, HistoryView
from nextbest.decisioning.plans import (
    BOOST, CHANNEL, EXPECTED_VALUE, FORCED, KEY, OFFER, PROBABILITY, TRIGGER, UPLIFT, CustomerPlan,
)
from nextbest.decisioning.prepared import OFFER_HISTORY_FILL, OfferHistoryRows, PreparedCustomers, ReasonMemo  # noqa: F401 - re-exported
from nextbest.decisioning.ruleset import RuleSet
from nextbest.decisioning.selection import EPSILON, GREEDY, SOFTMAX, UNIFORM, Groups, draw, fits_capacity, propensities
from nextbest.errors import BadInputError, NotFoundError
from nextbest.models.candidate_matrix import CandidateMatrix
from nextbest.models.scoring import Scorer

_EXPLORATION = {"epsilon_greedy": EPSILON, "softmax": SOFTMAX, "none": GREEDY}
#: Reasons of the "no action" a customer gets when nothing is worth doing.
NO_ACTION_REASONS: tuple[str, ...] = ("no_positive_expected_value",)


def assign_arms(customer_ids: np.ndarray, config: NextbestConfig) -> np.ndarray:
    """Experiment arm index (config order) of each customer: a salted hash, stable forever.

    Parameters
    ----------
    customer_ids
        Integer customer ids.
    config
        Its ``policy.experiment`` gives the arms, shares and salt.
    """
    exp = config.policy.experiment
    u = uniform(np.asarray(customer_ids, dtype=np.int64), key_of("arm", exp.name, exp.salt))
    edges = np.cumsum([a.share for a in exp.arms])
    return np.minimum(np.searchsorted(edges, u, side="right"), len(exp.arms) - 1)


def salutation(first_name: object, gender: object) -> str:
    """Greeting for the message: the first name when known, else by gender."""
    if isinstance(first_name, str) and first_name.strip():
        return f"Dear {first_name.strip()}"
    return {"f": "Dear Madam", "m": "Dear Sir"}.get(gender if isinstance(gender, str) else "", "Hello")


class _Blanks(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill_message(template: str, values: Mapping[str, str]) -> str:
    """``template`` with ``{salutation}``, ``{category}``… filled; unknown fields stay as written."""
    try:
        # str.format_map asks _Blanks for unknown names as vformat does, in C.
        return template.format_map(_Blanks(values))
    except (IndexError, ValueError):  # positional or malformed fields: the general formatter's answer
        return string.Formatter().vformat(template, (), _Blanks(values))


@dataclass(frozen=True)
class ScoredCandidates:
    """Surviving candidate rows of a batch with their arbitration terms.

    ``cust``/``pair``/``offer``/``channel`` index each row's customer (batch
    position), grid pair, offer and channel (config order); the other arrays
    are per row except ``ids``, ``arm``, ``cold_start`` (per customer).
    ``customers`` are the prepared customers the rows belong to; :attr:`frame`
    builds the rows as a DataFrame (the scorers' input) when asked.
    """

    at: dt.datetime
    ids: np.ndarray
    arm: np.ndarray
    grid: PairGrid
    target: Targeting
    view: HistoryView
    codes: np.ndarray
    cust: np.ndarray
    pair: np.ndarray
    offer: np.ndarray
    channel: np.ndarray
    customers: PreparedCustomers
    probability: np.ndarray
    uplift: np.ndarray
    boost: np.ndarray
    gain: np.ndarray
    cost: np.ndarray
    expected_value: np.ndarray
    cold_start: np.ndarray
    engine: DecisionEngine

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The candidate rows as the scorers read them: ``customer_id, offer_id, channel`` + features."""
        return self.engine._candidate_frame(self.customers, self.cust, self.offer, self.channel)


@dataclass(frozen=True)
class Decisions:
    """What :meth:`DecisionEngine.decide` returns for a batch.

    Attributes
    ----------
    decisions
        One row per customer in ``decisions``-table shape, plus ``cold_start``.
    actions
        Ranked actions (``rank`` 1 = the decision; a null offer = no action) with
        their arbitration terms and ``reasons``.
    suppressed
        ``customer_id, offer_id, channel, reason, detail`` per removed pair (when
        ``explain``), else ``None``.
    candidates
        Number of scored candidate rows (for benchmarks).
    """

    decisions: pd.DataFrame
    actions: pd.DataFrame
    suppressed: pd.DataFrame | None
    candidates: int


@dataclass(frozen=True)
class _Actions:
    """Ranked actions of a batch, one entry per action (unordered).

    ``row`` is the candidate row (-1 = the "no action" of a customer with no choice).
    """

    cust: np.ndarray  # customer position in the batch
    rank: np.ndarray
    row: np.ndarray
    explored: np.ndarray


@dataclass(frozen=True)
class _Batch:
    """What a batch decided, as arrays; :meth:`DecisionEngine.decide` and :meth:`DecisionEngine.rank` present it."""

    sc: ScoredCandidates
    decision_ids: np.ndarray
    chosen: np.ndarray  # (n,) candidate row of the decision, -1 = none
    prop: np.ndarray  # (R,) selection probability of each candidate row
    contacted: np.ndarray  # (n,)
    actions: _Actions
    reasons: list[list[str]] | None  # per action, when explained
    suppressed: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None  # customer, offer, channel, code


def _pick(values: np.ndarray | None, rows: np.ndarray, fill: object) -> np.ndarray:
    """``values[rows]`` with ``fill`` where ``rows`` is -1 (``values`` may be empty or ``None``)."""
    rows = np.asarray(rows, dtype=np.int64)
    if values is None or len(values) == 0:
        return np.full(len(rows), fill, dtype=object if fill is None else None)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], fill)


class DecisionEngine:
    """Ranks next best actions under the configured policy.

    Construction is cheap (rules are parsed once, scorers are used as given), so
    the scoring service builds one per loaded model set.

    Parameters
    ----------
    config
        Validated configuration.
    scorers
        Registry alias (``"champion"``, ``"challenger"``) → loaded scorer. A model
        arm whose alias is absent is served by the first model arm that has one
        and is logged under that arm's name, so no decision claims a model it did
        not use.
    known_features
        Feature names rules may read (default: the feature registry's).
    matrix_scoring
        Score through :class:`~nextbest.models.candidate_matrix.CandidateMatrix`
        where the scorer allows it (same numbers, no candidate DataFrame); ``False``
        scores every candidate through ``Scorer.score`` on the DataFrame (the
        reference the matrix path is tested against).

    Raises
    ------
    NotFoundError
        When no scorer is given (run ``nextbest train``).
    RuleError
        When a rule of ``config`` is invalid.
    """

    def __init__(
        self,
        config: NextbestConfig,
        scorers: Mapping[str, Scorer],
        *,
        known_features: frozenset[str] | None = None,
        matrix_scoring: bool = True,
    ) -> None:
        if not scorers:
            raise NotFoundError("no model to score with; run `nextbest train` to register a champion")
        self.config = config
        self.scorers = dict(scorers)
        self.rules = RuleSet.from_config(config, known_features)
        offers, channels = config.offers.offers, config.channels.channels
        arb = config.policy.arbitration
        self.offer_ids = np.array([o.id for o in offers], dtype=object)
        self.channel_ids = np.array([c.id for c in channels], dtype=object)
        self.offer_value = np.array([getattr(o, arb.value_field) for o in offers], dtype=float)
        self.offer_lever = np.array([o.lever if arb.include_lever else 1.0 for o in offers], dtype=float)
        self.channel_cost = np.array([c.cost_per_contact if arb.include_cost else 0.0 for c in channels], dtype=float)
        self.offer_stage = np.array([JOURNEY_STAGES.index(o.stage) for o in offers])

        arms = config.policy.experiment.arms
        available = [i for i, a in enumerate(arms) if a.policy == "model" and a.model_alias in self.scorers]
        default_alias = arms[available[0]].model_alias if available else next(iter(self.scorers))
        # Arm as logged: a model arm without its model is served (and logged) as the fallback arm.
        self.arm_served = np.array(
            [i if (a.policy != "model" or a.model_alias in self.scorers or not available) else available[0] for i, a in enumerate(arms)]
        )
        self.arm_scorer = [
            a.model_alias if a.policy == "model" and a.model_alias in self.scorers else default_alias for a in arms
        ]
        explore = _EXPLORATION[config.policy.exploration.method]
        self.arm_policy = np.array(
            [UNIFORM if a.policy == "random" else GREEDY if a.policy == "rules" else explore for a in arms]
        )
        self.arm_rules = np.array([a.policy == "rules" for a in arms])
        self.arm_contacts = np.array([a.policy != "control" for a in arms])
        self.arm_names = np.array([a.name for a in arms], dtype=object)
        # Everything below depends on the config alone: computed here once, not per decision.
        self._arm_alias = np.array(self.arm_scorer, dtype=object)
        self._arm_version = np.array([self.scorers[a].model_version for a in self.arm_scorer], dtype=object)
        self._trigger_ids = np.array([t.id for t in config.policy.triggers] + [None], dtype=object)
        self._offer_category = [o.category for o in offers]
        self._offer_message = [o.message for o in offers]
        self._grids: dict[tuple[dt.date | None, str | None], PairGrid] = {}
        self._validity: dict[dt.date, np.ndarray] = {}
        self._details: np.ndarray | None = None
        self._profiles: tuple[pd.DataFrame, pd.Index, np.ndarray | None, np.ndarray | None] | None = None
        self._policy_arrays = PolicyArrays.of(config)
        self._offer_pos = {o: i for i, o in enumerate(self.offer_ids.tolist())}
        # Python scalars for the documents (what .tolist() of the arrays gives).
        self._offer_list, self._channel_list = self.offer_ids.tolist(), self.channel_ids.tolist()
        self._value_list, self._lever_list = self.offer_value.tolist(), self.offer_lever.tolist()
        self._cost_list = self.channel_cost.tolist()
        self._no_history: ContactHistory | None = None
        #: Reason codes :meth:`rank_planned` found in plans (the service's metrics read it).
        self.reasons_from_plans = 0
        #: Alias → matrix-level scorer, for the scorers that have one.
        self.matrix: dict[str, CandidateMatrix] = {}
        if matrix_scoring:
            for alias, scorer in self.scorers.items():
                m = CandidateMatrix.of(scorer, self.offer_ids.tolist(), self.channel_ids.tolist())
                if m is not None:
                    self.matrix[alias] = m

    # ------------------------------------------------------------------ batch core
    def prepare(self, features: pd.DataFrame, offer_history: pd.DataFrame | None = None) -> PreparedCustomers:
        """Read everything decisions need from a feature frame, once.

        Parameters
        ----------
        features
            One row per customer: ``customer_id`` and the customer features.
        offer_history
            ``build_offer_history`` rows joined onto candidates for the scorer.

        Raises
        ------
        BadInputError
            When the frame lacks ``customer_id``, repeats one, or lacks a feature
            the policy reads.
        """
        if "customer_id" not in features.columns:
            raise BadInputError("feature frame has no 'customer_id' column")
        features = features.reset_index(drop=True)
        ids = features["customer_id"].to_numpy(dtype=np.int64)
        if len(np.unique(ids)) != len(ids):
            raise BadInputError("feature frame has duplicate customer_id values; pass one row per customer")
        facts = customer_facts(features, self.config, self.rules)
        known = features.notna().to_numpy()
        known[:, features.columns.get_loc("customer_id")] = False
        interest = (
            features["interest_category"].to_numpy(dtype=object)
            if "interest_category" in features.columns else np.full(len(ids), None, dtype=object)
        )
        history = OfferHistoryRows.of(offer_history, ids, self.offer_ids.tolist()) if offer_history is not None else None
        columns = history.columns if history is not None else []
        encoders = {alias: (lambda frame, m=m: m.encode(frame, columns)) for alias, m in self.matrix.items()}
        return PreparedCustomers(ids, facts, ~known.any(axis=1), interest, history, lambda _: features, encoders)

    def score_candidates(
        self,
        features: pd.DataFrame | PreparedCustomers,
        at: dt.datetime,
        *,
        context: Context | None = None,
        history: ContactHistory | None = None,
        offer_history: pd.DataFrame | None = None,
    ) -> ScoredCandidates:
        """Steps 1-4 for a batch: the candidates that survive every rule, scored and valued.

        Parameters are those of :meth:`decide`; campaign planning starts from here.

        Raises
        ------
        BadInputError
            When the frame lacks ``customer_id``, repeats one, or lacks a feature
            the policy reads.
        """
        customers = features if isinstance(features, PreparedCustomers) else self.prepare(features, offer_history)
        context = context or Context()
        at = pd.Timestamp(at).to_pydatetime()
        history = history if history is not None else ContactHistory.empty(self.config)
        return self._scored(customers, at, context, history, self._grid(at.date(), context.channel))

    def _scored(
        self, customers: PreparedCustomers, at: dt.datetime, context: Context, history: ContactHistory, grid: PairGrid
    ) -> ScoredCandidates:
        """:meth:`score_candidates` over the pairs of ``grid``."""
        ids = customers.ids
        target = customers.facts.targeting(self.config, context)
        view = history.view(ids, at)
        codes = suppression_codes(self.config, grid, target, view, self._policy_arrays)
        arm = self.arm_served[assign_arms(ids, self.config)]

        cust, pair = np.nonzero(codes == 0)
        offer, channel = grid.offer[pair], grid.channel[pair]
        p_contact, uplift = self._score(customers, cust, offer, channel, arm[cust])

        arb = self.config.policy.arbitration
        boost = target.boost[cust, offer]
        stages = self.config.policy.stages
        if stages.mode == "boost":
            boost = boost * np.where(self.offer_stage[offer] == target.stage[cust], stages.boost, 1.0)
        # Boosts scale the gain, never the cost: a boosted loss must not become a bigger loss.
        gain = self.offer_value[offer] * self.offer_lever[offer] * boost
        p = uplift if arb.objective == "uplift" else p_contact
        cost = self.channel_cost[channel]
        return ScoredCandidates(
            at=at, ids=ids, arm=arm, grid=grid, target=target, view=view, codes=codes, cust=cust, pair=pair,
            offer=offer, channel=channel, customers=customers, probability=p_contact, uplift=uplift, boost=boost,
            gain=gain, cost=cost, expected_value=p * gain - cost, cold_start=customers.cold_start, engine=self,
        )

    def decide(
        self,
        features: pd.DataFrame | PreparedCustomers,
        at: dt.datetime,
        *,
        context: Context | None = None,
        seed: int | None = None,
        history: ContactHistory | None = None,
        offer_history: pd.DataFrame | None = None,
        top_k: int = 1,
        explain: bool = False,
        record: bool = True,
    ) -> Decisions:
        """Decide for every customer of ``features`` at ``at``.

        Parameters
        ----------
        features
            One row per customer: ``customer_id`` and the customer features
            (``consent_*``, ``reachable_*``, ``journey_stage``, rule and trigger inputs),
            or customers already :meth:`prepare`\ d (``offer_history`` is then theirs).
        at
            Decision time (naive, warehouse time).
        context
            Inbound channel and triggering event.
        seed
            Exploration seed; ``None`` draws fresh randomness. The same seed, inputs
            and history always give the same decisions, however the batch is split.
        history
            Contact history; ``None`` = no past contacts. Updated in place with the
            contacted decisions when ``record``.
        offer_history
            ``build_offer_history`` rows joined onto candidates for the scorer.
        top_k
            Ranked actions to return per customer.
        explain
            Also compute reason codes and the suppressed candidates (slower).
        record
            Add contacted decisions to ``history``.
        """
        b = self._run(features, at, context, seed, history, offer_history, top_k, explain, record)
        sc, a = b.sc, b.actions
        n = len(sc.ids)
        has = b.chosen >= 0
        decisions = pd.DataFrame(
            {
                "decision_id": b.decision_ids,
                "customer_id": sc.ids,
                "ts": pd.Timestamp(sc.at).as_unit("us"),
                "offer_id": np.where(has, _pick(self.offer_ids[sc.offer], b.chosen, None), None),
                "channel": np.where(has, _pick(self.channel_ids[sc.channel], b.chosen, None), None),
                "arm": self.arm_names[sc.arm],
                "experiment": self.config.policy.experiment.name,
                "propensity": _pick(b.prop, b.chosen, 1.0),
                "model_version": self._arm_version[sc.arm] if n else np.array([], dtype=object),
                "score": _pick(sc.expected_value, b.chosen, 0.0),
                "contacted": b.contacted,
                "cold_start": sc.cold_start,
            }
        )
        # Customer id, then rank: the order callers read actions in.
        order = np.lexsort((a.rank, sc.ids[a.cust]))
        columns = self._action_columns(sc, a, order, b.prop)
        if (a.row < 0).any():  # text columns holding "no action" nulls stay object, not str
            columns |= {c: pd.Series(columns[c], dtype=object) for c in ("offer_id", "channel", "trigger")}
        actions = pd.DataFrame({"decision_id": b.decision_ids[a.cust[order]], **columns})
        suppressed = None
        if explain:
            actions = actions.assign(reasons=[b.reasons[i] for i in order])  # type: ignore[index]
            c, o, ch, code = b.suppressed  # type: ignore[misc]
            details = self._detail_table()
            suppressed = pd.DataFrame(
                {
                    "customer_id": sc.ids[c],
                    "offer_id": self.offer_ids[o],
                    "channel": self.channel_ids[ch],
                    "reason": np.array(REASONS, dtype=object)[code],
                    "detail": details[code, o, ch],
                }
            )
        return Decisions(decisions, actions, suppressed, len(sc.cust))

    def _run(
        self,
        features: pd.DataFrame | PreparedCustomers,
        at: dt.datetime,
        context: Context | None,
        seed: int | None,
        history: ContactHistory | None,
        offer_history: pd.DataFrame | None,
        top_k: int,
        explain: bool,
        record: bool,
        suppressed: bool | None = None,
    ) -> _Batch:
        """Score, select, record and rank a batch; the arrays :meth:`decide` and :meth:`rank` present."""
        history = history if history is not None else ContactHistory.empty(self.config)
        sc = self.score_candidates(features, at, context=context, history=history, offer_history=offer_history)
        ids, arm, cust, offer, channel = sc.ids, sc.arm, sc.cust, sc.offer, sc.channel
        n = len(ids)
        key, forced = self._ranking_keys(sc)

        chosen, prop, order, in_set, removed = self._select(ids, arm, cust, offer, channel, key, forced, sc.view, seed, sc.at)
        decision_ids = np.char.add(f"{uuid.uuid4().hex}-", np.arange(n).astype(str)).astype(object)
        contacted = (chosen >= 0) & self.arm_contacts[arm]
        if record:
            made = np.flatnonzero(contacted)
            _record(history, ids[made], sc.at, self.offer_ids[offer[chosen[made]]], self.channel_ids[channel[chosen[made]]])
        actions = self._actions(n, chosen, order, in_set, cust, top_k)
        reasons = removed_pairs = None
        if explain:
            reasons = self._reasons(actions, sc)
        if explain if suppressed is None else suppressed:
            removed_pairs = self._suppressed(sc, removed)
        return _Batch(sc, decision_ids, chosen, prop, contacted, actions, reasons, removed_pairs)

    def _ranking_keys(self, sc: ScoredCandidates) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate row's ranking key and whether a trigger forces it."""
        # The rules arm ranks by business value alone; every arm still reports the model's EV.
        key = np.where(self.arm_rules[sc.arm[sc.cust]], sc.gain - sc.cost, sc.expected_value)
        return key, sc.target.forced[sc.cust, sc.offer]

    # ------------------------------------------------------------------ plans (one customer at a time)
    @property
    def plannable(self) -> bool:
        """Whether :meth:`rank_planned` can serve every arm (each arm's scorer has a matrix path)."""
        return all(alias in self.matrix for alias in self.arm_scorer)

    def plans(
        self, customers: PreparedCustomers, at: dt.datetime, context: Context | None = None,
        profiles: pd.DataFrame | None = None, reasons: int = 0,
    ) -> list[CustomerPlan]:
        """The :class:`~nextbest.decisioning.plans.CustomerPlan` of each of ``customers``.

        One vectorised pass for the batch: steps 1-4 of :meth:`decide` over every
        offer (valid or not) with no contact history, which keeps every candidate
        offer validity and the contact policy could later remove (an empty history
        is the least restrictive one).

        Parameters
        ----------
        customers
            Prepared customers, taken from the block :meth:`rank_planned` will get
            (their ``origin`` rows in it; without, they are that block).
        at
            A decision time (plans hold for any: nothing they keep depends on it).
        context
            Inbound channel and triggering event.
        profiles
            As for :meth:`rank` (the salutation).
        reasons
            Leading candidates of each customer's action set whose reason codes
            the plan holds (computed here, together: ~0.2 ms a candidate).
        """
        if self._no_history is None:
            self._no_history = ContactHistory.empty(self.config)
        context = context or Context()
        at = pd.Timestamp(at).to_pydatetime()
        # Every offer, valid at ``at`` or not: validity is a request's check, so a plan serves any day.
        sc = self._scored(customers, at, context, self._no_history, self._grid(None, context.channel))
        key, forced = self._ranking_keys(sc)
        order = _priority(sc.cust, key, forced)
        cust, offer = sc.cust[order], sc.offer[order]
        values = np.column_stack([key, sc.probability, sc.uplift, sc.boost, sc.expected_value])[order]
        pairs = np.column_stack([offer, sc.channel[order], sc.target.trigger[cust, offer], forced[order]]).astype(np.int16)
        n = len(sc.ids)
        groups = Groups.of(cust, n)
        first, gender = self._profile_columns(profiles, sc.ids)
        # Not taken from a larger block: the customers are their own block.
        origin = customers.origin if customers.origin is not None else np.arange(n)
        # The action set is a prefix of a customer's rows (forced first, then key): its head's reason codes.
        in_set = forced[order] | (values[:, KEY] > self.config.policy.arbitration.min_expected_value)
        head = np.flatnonzero(in_set & (groups.pos < reasons))
        held = self._head_reasons(sc, order[head])
        ends = np.searchsorted(head, groups.start + groups.count)
        plans = []
        for i, (start, count) in enumerate(zip(groups.start.tolist(), groups.count.tolist(), strict=True)):
            rows = slice(start, start + count)
            liked = customers.interest[i]
            plans.append(
                CustomerPlan(
                    customer_id=int(sc.ids[i]), origin=int(origin[i]), arm=int(sc.arm[i]),
                    cold_start=bool(sc.cold_start[i]), stage=int(sc.target.stage[i]),
                    greeting=salutation(first[i], gender[i]), interest=liked if isinstance(liked, str) else None,
                    # Copies: a kept plan must not hold on to the whole batch's arrays.
                    pairs=pairs[rows].copy(), values=values[rows].copy(),
                    reasons=tuple(held[ends[i - 1] if i else 0 : ends[i]]),
                )
            )
        return plans

    def _head_reasons(self, sc: ScoredCandidates, rows: np.ndarray) -> list[tuple[str, ...]]:
        """Model reason codes of candidate rows ``rows`` of ``sc``, one booster call per model."""
        out: list[tuple[str, ...]] = [()] * len(rows)
        aliases = self._arm_alias[sc.arm[sc.cust[rows]]]
        for alias in dict.fromkeys(aliases.tolist()):
            sel = np.flatnonzero(aliases == alias)
            c, o = sc.cust[rows[sel]], sc.offer[rows[sel]]
            found = self.matrix[alias].reasons(
                sc.customers.encoded(alias), c, o, sc.channel[rows[sel]], self._history_of(sc.customers, c, o), top=3
            )
            for i, r in zip(sel.tolist(), found, strict=True):
                # Few distinct codes ("recency_days:+0.12"), held by every plan: one string each.
                out[i] = tuple(sys.intern(code) for code in r)
        return out

    def rank_planned(
        self,
        plan: CustomerPlan,
        customers: PreparedCustomers,
        at: dt.datetime,
        top_k: int = 3,
        seed: int | None = None,
        *,
        history: ContactHistory,
    ) -> RankResponse:
        """Rank one customer from their plan: the document :meth:`rank` gives, without ``suppressed``.

        Applies offer validity at ``at`` and the contact policy to the plan's
        candidates, draws the choice and records a contact into ``history``, as
        :meth:`rank` does for a batch of one.

        Parameters
        ----------
        plan
            The customer's plan for the request's context (:meth:`plans`).
        customers
            The prepared block ``plan.origin`` indexes: its reason memo, and the rows
            reason codes are computed from when the memo lacks them.
        at, top_k, seed, history
            As for :meth:`rank`.
        """
        at = pd.Timestamp(at).to_pydatetime()
        ids = np.array([plan.customer_id], dtype=np.int64)
        offer, channel = plan.pairs[:, OFFER], plan.pairs[:, CHANNEL]
        blocked = contact_blocked(self.config, PairGrid(offer, channel), history.view(ids, at), self._policy_arrays)[0]
        live = np.flatnonzero(~blocked & self._valid_offers(at.date())[offer])
        values, forced = plan.values[live], plan.pairs[live, FORCED].astype(bool)
        key = values[:, KEY]
        in_set = forced | (key > self.config.policy.arbitration.min_expected_value)
        policy = self.arm_policy[plan.arm]
        if policy != UNIFORM and forced.any():
            policy = GREEDY
        exploration = self.config.policy.exploration
        groups = Groups.one(len(live))
        prop, m = propensities(
            groups, key, in_set, np.array([policy]),
            top_n=exploration.top_n, epsilon=exploration.epsilon, temperature=exploration.temperature,
        )
        pick = int(draw(groups, prop, m, _draws(ids, seed, at))[0])
        # The choice (or "no action"), then the best of the action set; as in _actions.
        rows = [pick, *[r for r in np.flatnonzero(in_set).tolist() if r != pick][: top_k - 1]]
        contacted = pick >= 0 and bool(self.arm_contacts[plan.arm])
        offer, channel = offer[live], channel[live]
        if contacted:
            _record(history, ids, at, self.offer_ids[offer[[pick]]], self.channel_ids[channel[[pick]]])

        real = np.array([r for r in rows if r >= 0], dtype=np.int64)
        o, ch = offer[real], channel[real]
        model = iter(self._planned_reasons(self._arm_alias[plan.arm], plan, customers, live[real], o, ch))
        columns = zip(
            o.tolist(), ch.tolist(), values[real].tolist(), prop[real].tolist(), plan.pairs[live[real], TRIGGER].tolist(),
            forced[real].tolist(), (self.offer_stage[o] == plan.stage).tolist(), strict=True,
        )
        actions = []
        for rank, row in enumerate(rows, start=1):
            if row < 0:
                actions.append(self._action(rank, -1, -1, np.nan, np.nan, 1.0, 0.0, 1.0, list(NO_ACTION_REASONS), None, "", None))
                continue
            oi, ci, v, p, trig, forced_row, staged = next(columns)
            # Explored: the draw chose another than the best candidate.
            reasons = [*next(model), *self._rule_reasons(oi, trig, forced_row, staged, rank == 1 and row > 0)]
            actions.append(
                self._action(
                    rank, oi, ci, v[PROBABILITY], v[UPLIFT], v[BOOST], v[EXPECTED_VALUE], p, reasons,
                    self._trigger_ids[trig], plan.greeting, plan.interest,
                )
            )
        return RankResponse.model_construct(
            decision_id=f"{uuid.uuid4().hex}-0", customer_id=plan.customer_id, at=at,
            model_version=self._arm_version[plan.arm], experiment=self.config.policy.experiment.name,
            arm=self.arm_names[plan.arm], contacted=contacted, cold_start=plan.cold_start, actions=actions,
            suppressed=None,
        )

    def _planned_reasons(
        self, alias: str, plan: CustomerPlan, customers: PreparedCustomers, rows: np.ndarray, o: np.ndarray,
        ch: np.ndarray,
    ) -> list[tuple[str, ...]] | list[list[str]]:
        """Model reason codes of the plan's rows ``rows`` (pairs ``(o, ch)``): the plan's own, else the memo's."""
        found: list[tuple[str, ...] | list[str]] = [plan.reasons[r] if r < len(plan.reasons) else () for r in rows.tolist()]
        rest = np.flatnonzero(rows >= len(plan.reasons))
        self.reasons_from_plans += len(rows) - len(rest)
        if not len(rest):
            return found  # type: ignore[return-value]
        matrix = self.matrix[alias]
        o, ch = o[rest], ch[rest]

        def compute(picked: np.ndarray) -> list[list[str]]:
            # Only the customer's own row: a look-up in the whole block costs as much as the block is large.
            one = customers.take(np.array([plan.origin]))
            zero = np.zeros(len(picked), dtype=np.int64)
            om = o[picked]
            return matrix.reasons(one.encoded(alias), zero, om, ch[picked], self._history_of(one, zero, om), top=3)

        if customers.memo is None:
            others: list[tuple[str, ...]] | list[list[str]] = compute(np.arange(len(o)))
        else:
            others = _remembered(customers.memo, alias, np.full(len(o), plan.origin), o, ch, compute)
        for i, r in zip(rest.tolist(), others, strict=True):
            found[i] = r
        return found  # type: ignore[return-value]

    def _candidate_frame(
        self, customers: PreparedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray
    ) -> pd.DataFrame:
        features = customers.frame
        # Text columns as categoricals: taking ~25 rows per customer copies codes, not strings.
        # (Skipped for small batches, where the per-column conversion costs more than it saves.)
        # Small batches: Arrow-backed strings as plain objects, whose row take is far cheaper.
        if len(features) >= 1000:
            text = {c: "category" for c, d in features.dtypes.items() if not (pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d))}
        else:
            text = {c: object for c, d in features.dtypes.items() if isinstance(d, pd.StringDtype)}
        compact = features.astype(text) if text else features
        frame = compact.take(cust).reset_index(drop=True)
        # Column labels as objects: scorers add columns, and inserting into an Arrow-backed
        # string index costs ~0.1 ms a column, most of a single-customer decision.
        frame.columns = frame.columns.astype(object)
        pair = pd.DataFrame(
            {
                "offer_id": pd.Categorical.from_codes(offer, categories=list(self.offer_ids)),
                "channel": pd.Categorical.from_codes(channel, categories=list(self.channel_ids)),
            }
        )
        added: dict[str, np.ndarray] = {}
        if customers.offer_history is not None and len(frame):
            added = customers.offer_history.lookup(cust, offer, len(self.offer_ids))
        # One concatenation, not an insert per column: the frame has a block per categorical
        # or nullable column, and pandas slows down (and warns) on inserts into such frames.
        parts = [frame.iloc[:, :1], pair, frame.iloc[:, 1:]]
        fresh = {c: v for c, v in added.items() if c not in frame.columns}
        if fresh:
            parts.append(pd.DataFrame(fresh))
        frame = pd.concat(parts, axis=1)
        replaced = {c: v for c, v in added.items() if c not in fresh}
        return frame.assign(**replaced) if replaced else frame

    def _history_of(self, customers: PreparedCustomers, cust: np.ndarray, offer: np.ndarray) -> dict[str, np.ndarray]:
        """Offer-history values of candidate rows (none without offer history)."""
        if customers.offer_history is None or len(cust) == 0:
            return {}
        return customers.offer_history.lookup(cust, offer, len(self.offer_ids))

    def _score(
        self, customers: PreparedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray, row_arm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        p_contact = np.zeros(len(cust))
        uplift = np.zeros(len(cust))
        if len(cust) == 0:
            return p_contact, uplift
        aliases = np.array(self.arm_scorer, dtype=object)[row_arm]
        frame: pd.DataFrame | None = None
        history: dict[str, np.ndarray] | None = None
        for alias in dict.fromkeys(self.arm_scorer):
            sel = aliases == alias
            if not sel.any():
                continue
            matrix = self.matrix.get(alias)
            if matrix is not None:
                history = self._history_of(customers, cust, offer) if history is None else history
                every = sel.all()
                p_contact[sel], uplift[sel] = matrix.score(
                    customers.encoded(alias), cust if every else cust[sel], offer if every else offer[sel],
                    channel if every else channel[sel], history if every else {c: v[sel] for c, v in history.items()},
                )
                continue
            frame = self._candidate_frame(customers, cust, offer, channel) if frame is None else frame
            part = frame if sel.all() else frame.loc[sel]
            scores = self.scorers[alias].score(part)
            p_contact[sel] = scores["p_contact"].to_numpy(dtype=float)
            uplift[sel] = scores["uplift"].to_numpy(dtype=float)
        return p_contact, uplift

    def _select(
        self,
        ids: np.ndarray,
        arm: np.ndarray,
        cust: np.ndarray,
        offer: np.ndarray,
        channel: np.ndarray,
        key: np.ndarray,
        forced: np.ndarray,
        view: HistoryView,
        seed: int | None,
        at: dt.datetime,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Choose a row per customer; allocate capacities; return choice, propensities,
        priority order, action-set membership and rows removed for capacity."""
        n = len(ids)
        exploration = self.config.policy.exploration
        min_ev = self.config.policy.arbitration.min_expected_value
        # Priority within a customer: forced, then key, then config order (stable ties).
        order = _priority(cust, key, forced)
        in_set_sorted = forced[order] | (key[order] > min_ev)
        policy = self.arm_policy[arm].copy()
        has_forced = np.bincount(cust[forced], minlength=n) > 0
        policy[has_forced & (policy != UNIFORM)] = GREEDY
        u = _draws(ids, seed, at)

        prop = np.zeros(len(cust))
        chosen = np.full(n, -1, dtype=np.int64)
        alive = np.ones(len(cust), dtype=bool)
        removed = np.zeros(len(cust), dtype=np.int8)  # suppression code of rows lost to capacity
        ch_left = view.channel_remaining.copy()
        of_left = view.offer_remaining.copy()
        pending = np.ones(n, dtype=bool)
        contacts = self.arm_contacts[arm]
        while pending.any():
            keep = alive[order] & pending[cust[order]]
            rows = order[keep]
            groups = Groups.of(cust[rows], n)
            p_rows, m = propensities(
                groups, key[rows], in_set_sorted[keep], policy,
                top_n=exploration.top_n, epsilon=exploration.epsilon, temperature=exploration.temperature,
            )
            pick = draw(groups, p_rows, m, u)
            prop[rows] = p_rows
            picked_cust = np.nonzero(pending & (pick >= 0))[0]
            picked = rows[pick[picked_cust]]
            chosen[pending] = -1
            chosen[picked_cust] = picked
            # Capacity: contacting picks, best key first, up to what each channel/offer has left.
            capped = contacts[picked_cust] & (np.isfinite(ch_left[channel[picked]]) | np.isfinite(of_left[offer[picked]]))
            cand = picked[capped]
            if len(cand) == 0:
                break
            by_key = cand[np.argsort(-key[cand], kind="stable")]
            ok = fits_capacity(channel[by_key], ch_left) & fits_capacity(offer[by_key], of_left)
            accepted = by_key[ok]
            ch_left -= np.bincount(channel[accepted], minlength=len(ch_left))
            of_left -= np.bincount(offer[accepted], minlength=len(of_left))
            lost = by_key[~ok]
            pending[:] = False
            if len(lost) == 0:
                break
            lost_cust = cust[lost]
            pending[lost_cust] = True
            chosen[lost_cust] = -1
            # Every row of a losing customer on a now-full channel or offer goes.
            mine = pending[cust] & alive
            full_ch = mine & (ch_left[channel] <= 0)
            full_of = mine & ~full_ch & (of_left[offer] <= 0)
            removed[full_ch] = CODE["channel_capacity"]
            removed[full_of] = CODE["offer_cap"]
            alive &= ~(full_ch | full_of)
            prop[mine] = 0.0
        in_set = np.zeros(len(cust), dtype=bool)
        in_set[order] = in_set_sorted
        return chosen, prop, order[alive[order]], in_set & alive, removed

    def _action_columns(
        self, sc: ScoredCandidates, actions: _Actions, order: np.ndarray, prop: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The action table's columns, rows in ``order`` (``actions`` frame of :class:`Decisions`)."""
        rows = actions.row[order]
        c = actions.cust[order]
        real = rows >= 0
        offer = _pick(sc.offer, rows, 0).astype(np.int64)
        channel = _pick(sc.channel, rows, 0).astype(np.int64)
        offer_row = sc.offer[np.maximum(rows, 0)] if len(sc.offer) else offer
        trigger = np.where(real, sc.target.trigger[c, offer], -1) if len(c) else np.zeros(0, dtype=np.int64)
        return {
            "customer_id": sc.ids[c],
            "rank": actions.rank[order],
            "offer_id": np.where(real, self.offer_ids[offer], None),
            "channel": np.where(real, self.channel_ids[channel], None),
            "probability": _pick(sc.probability, rows, np.nan),
            "uplift": _pick(sc.uplift, rows, np.nan),
            "value": np.where(real, self.offer_value[offer], 0.0),
            "lever": np.where(real, self.offer_lever[offer], 0.0),
            "boost": _pick(sc.boost, rows, 1.0),
            "cost": np.where(real, self.channel_cost[channel], 0.0),
            "expected_value": _pick(sc.expected_value, rows, 0.0),
            "propensity": _pick(prop, rows, 1.0),
            "trigger": self._trigger_ids[trigger],
            "forced": real & sc.target.forced[c, offer_row] if len(c) else np.zeros(0, dtype=bool),
            "explored": actions.explored[order],
            "row": rows,
        }

    def _actions(
        self, n: int, chosen: np.ndarray, order: np.ndarray, in_set: np.ndarray, cust: np.ndarray, top_k: int
    ) -> _Actions:
        """The ranked actions of every customer: the choice, then the best of its action set."""
        is_chosen = np.zeros(len(cust), dtype=bool)
        is_chosen[chosen[chosen >= 0]] = True
        alt = order[in_set[order] & ~is_chosen[order]]
        alt_groups = Groups.of(cust[alt], n)
        alt = alt[alt_groups.pos < top_k - 1]
        alt_rank = Groups.of(cust[alt], n).pos + 2
        best = np.full(n, -1, dtype=np.int64)
        if len(order):
            first = Groups.of(cust[order], n)
            best = np.where(first.count > 0, order[np.minimum(first.start, len(order) - 1)], -1)
        has = np.flatnonzero(chosen >= 0)
        none = np.flatnonzero(chosen < 0)
        # A customer without a choice gets one "no action" row (row -1).
        rows = np.concatenate([chosen[has], alt, np.full(len(none), -1, dtype=np.int64)])
        who = np.concatenate([has, cust[alt], none]).astype(np.int64)
        rank = np.concatenate([np.ones(len(has), dtype=np.int64), alt_rank, np.ones(len(none), dtype=np.int64)])
        explored = (rank == 1) & (rows >= 0) & (rows != best[who])
        return _Actions(who, rank, rows, explored)

    def _reasons(self, actions: _Actions, sc: ScoredCandidates) -> list[list[str]]:
        """Reason codes of each action: model contributions, then the rules and triggers that applied."""
        rows = actions.row
        reasons: list[list[str]] = [[] for _ in range(len(rows))]
        real = np.flatnonzero(rows >= 0)
        aliases = self._arm_alias[sc.arm[sc.cust[rows[real]]]] if len(real) else np.array([], dtype=object)
        for alias in dict.fromkeys(aliases):
            sel = real[aliases == alias]
            matrix = self.matrix.get(alias)
            if matrix is not None:
                picked = rows[sel]
                model_reasons = self._matrix_reasons(alias, matrix, sc.customers, sc.cust[picked], sc.offer[picked], sc.channel[picked])
            else:
                model_reasons = self.scorers[alias].reasons(sc.frame.iloc[rows[sel]], top=3)
            for i, r in zip(sel, model_reasons, strict=True):
                reasons[i] = list(r)
        offer = sc.offer[rows[real]]
        trig = sc.target.trigger[sc.cust[rows[real]], offer].tolist()
        forced = sc.target.forced[sc.cust[rows[real]], offer].tolist()
        staged = (self.offer_stage[offer] == sc.target.stage[sc.cust[rows[real]]]).tolist()
        explored = actions.explored[real].tolist()
        for k, (i, o) in enumerate(zip(real.tolist(), offer.tolist(), strict=True)):
            reasons[i].extend(self._rule_reasons(o, trig[k], forced[k], staged[k], explored[k]))
        for i in np.flatnonzero(rows < 0).tolist():
            reasons[i] = list(NO_ACTION_REASONS)
        return reasons

    def _rule_reasons(self, offer: int, trigger: int, forced: bool, staged: bool, explored: bool) -> list[str]:
        """The rules, triggers and exploration behind an action on ``offer`` (after its model reasons)."""
        o = self.config.offers.offers[offer]
        out = []
        if trigger >= 0:
            out.append(f"trigger:{self._trigger_ids[trigger]}")
        if forced:
            out.append("forced")
        if o.eligibility:
            out.append(f"eligibility:{o.eligibility}")
        if o.segment:
            out.append(f"segment:{o.segment}")
        if staged and self.config.policy.stages.mode == "boost":
            out.append(f"stage:{o.stage}")
        if explored:
            out.append("explore")
        return out

    def _matrix_reasons(
        self, alias: str, matrix: CandidateMatrix, customers: PreparedCustomers, c: np.ndarray, o: np.ndarray, ch: np.ndarray
    ) -> list[list[str]] | list[tuple[str, ...]]:
        """Model reason codes of candidate rows ``(c, o, ch)`` of ``customers``, from their memo where it has them."""

        def compute(rows: np.ndarray) -> list[list[str]]:
            cr, orow = c[rows], o[rows]
            return matrix.reasons(customers.encoded(alias), cr, orow, ch[rows], self._history_of(customers, cr, orow), top=3)

        memo, origin = customers.memo, customers.origin
        if memo is None or origin is None:
            return compute(np.arange(len(c)))
        return _remembered(memo, alias, origin[c], o, ch, compute)

    def _suppressed(
        self, sc: ScoredCandidates, removed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(customer position, offer, channel, reason code)`` of every removed pair, customer-major."""
        codes = sc.codes.copy()
        lost = np.flatnonzero(removed)
        codes[sc.cust[lost], sc.pair[lost]] = removed[lost]
        c, p = np.nonzero(codes > 0)
        return c, sc.grid.offer[p], sc.grid.channel[p], codes[c, p].astype(np.int64)

    def _valid_offers(self, day: dt.date) -> np.ndarray:
        """(O,) whether each offer may be proposed on ``day``."""
        valid = self._validity.get(day)
        if valid is None:
            if len(self._validity) >= 64:
                self._validity.clear()
            valid = self._validity[day] = np.array([o.valid_at(day) for o in self.config.offers.offers])
        return valid

    def _grid(self, day: dt.date | None, channel: str | None) -> PairGrid:
        grid = self._grids.get((day, channel))
        if grid is None:
            grid = PairGrid.build(self.config, day, channel)
            if len(self._grids) >= 64:  # a long simulation moves through many days
                self._grids.clear()
            self._grids[(day, channel)] = grid
        return grid

    def _detail_table(self) -> np.ndarray:
        """(reason, offer, channel) -> the rule or limit that explains a suppression."""
        if self._details is not None:
            return self._details
        policy = self.config.policy
        offers, channels = self.config.offers.offers, self.config.channels.channels

        def detail(k: int, oi: int, ci: int) -> str:
            name = REASONS[k]
            if name == "eligibility":
                return offers[oi].eligibility or ""
            if name == "segment":
                return f"segment {offers[oi].segment}"
            if name in ("no_consent", "unreachable"):
                return f"consent_{channels[ci].id}" if name == "no_consent" else f"reachable_{channels[ci].id}"
            if name == "stage_gate":
                return f"offer stage {offers[oi].stage} is more than one stage ahead"
            if name == "channel_stage":
                return f"{channels[ci].id} needs stage {policy.stages.min_stage_for_channel.get(channels[ci].id)}"
            if name == "complaint":
                return f"complaint within {policy.contact.complaint_suppression_days} days"
            if name == "negative_response":
                return f"unsubscribe within {policy.contact.negative_response_suppression_days} days"
            if name == "contact_cap":
                return f"{policy.contact.max_contacts} contacts per {policy.contact.window_days} days"
            if name == "channel_cap":
                return f"{policy.contact.max_contacts_per_channel.get(channels[ci].id)} {channels[ci].id} contacts per {policy.contact.window_days} days"
            if name == "offer_cooldown":
                return f"offer shown within {policy.contact.offer_cooldown_days} days"
            if name == "offer_cap":
                return f"offer max_contacts {offers[oi].max_contacts} reached"
            return f"{channels[ci].id} daily capacity {channels[ci].daily_capacity} reached"

        # Few distinct (reason, offer, channel) triples: explain each once, then index.
        self._details = np.array(
            [[[detail(k, oi, ci) if k else "" for ci in range(len(channels))] for oi in range(len(offers))] for k in range(len(REASONS))],
            dtype=object,
        )
        return self._details

    def _profile_columns(self, profiles: pd.DataFrame | None, ids: np.ndarray) -> tuple[list[object], list[object]]:
        """``first_name`` and ``gender`` of ``ids`` (``None`` when unknown)."""
        if profiles is None:
            return [None] * len(ids), [None] * len(ids)
        cached = self._profiles
        # The service passes the same (immutable) profiles frame with every request: index it once.
        if cached is None or cached[0] is not profiles:
            unique = profiles.drop_duplicates("customer_id").sort_values("customer_id", kind="stable")
            index = pd.Index(unique["customer_id"].to_numpy(dtype=np.int64))
            first = unique["first_name"].to_numpy(dtype=object) if "first_name" in unique.columns else None
            gender = unique["gender"].to_numpy(dtype=object) if "gender" in unique.columns else None
            cached = self._profiles = (profiles, index, first, gender)
        _, index, first, gender = cached
        pos = _positions_in(index, ids)
        return _pick(first, pos, None).tolist(), _pick(gender, pos, None).tolist()

    # ------------------------------------------------------------------ documents
    def _action(
        self, rank: int, offer: int, channel: int, probability: float, uplift: float, boost: float,
        expected_value: float, propensity: float, reasons: list[str], trigger: object, greet: str, liked: object,
    ) -> Action:
        """One ranked action; ``offer`` -1 is "no action" (then ``channel`` is -1 too).

        Built from already validated values: ``model_construct`` skips re-validation.
        """
        personal = None
        if offer >= 0:
            # 'none' is the feature's value for "no recent interest".
            category = liked if isinstance(liked, str) and liked not in ("", "none") else self._offer_category[offer]
            personal = Personalisation.model_construct(
                salutation=greet, category=category, trigger=trigger if isinstance(trigger, str) else None,
                message=fill_message(self._offer_message[offer], {"salutation": greet, "category": category}),
            )
        real = offer >= 0
        return Action.model_construct(
            rank=rank, offer_id=self._offer_list[offer] if real else None,
            channel=self._channel_list[channel] if real else None,
            probability=_num(probability), uplift=_num(uplift), value=self._value_list[offer] if real else 0.0,
            lever=self._lever_list[offer] if real else 0.0, boost=boost, cost=self._cost_list[channel] if real else 0.0,
            expected_value=expected_value, propensity=min(max(propensity, 0.0), 1.0), reasons=reasons,
            personalisation=personal,
        )

    def rank(
        self,
        features: pd.DataFrame | PreparedCustomers,
        at: dt.datetime,
        context: Context | None = None,
        top_k: int = 3,
        seed: int | None = None,
        *,
        history: ContactHistory | None = None,
        offer_history: pd.DataFrame | None = None,
        profiles: pd.DataFrame | None = None,
        explain: bool = True,
        suppressed: bool | None = None,
    ) -> list[RankResponse]:
        """Rank and return one :class:`RankResponse` per customer.

        Parameters
        ----------
        features, at, context, top_k, seed, history, offer_history
            As for :meth:`decide` (``features`` may be :meth:`prepare`\ d customers).
        profiles
            ``customer_id, first_name, gender`` from ``customers`` for the salutation;
            read at response time only and never passed to a model.
        explain
            Include reasons and suppressed candidates.
        suppressed
            Whether to list the suppressed candidates; ``None`` follows ``explain``
            (the service always gives reasons, suppressions only when asked).

        Returns
        -------
        list of RankResponse
            In the order of ``features``; :func:`~nextbest.decisioning.log.decision_rows`
            turns them into rows for the ``decisions`` table.
        """
        b = self._run(features, at, context, seed, history, offer_history, top_k, explain, True, suppressed)
        sc, a = b.sc, b.actions
        n = len(sc.ids)
        first, gender = self._profile_columns(profiles, sc.ids)
        interest = sc.customers.interest.tolist()
        order = np.lexsort((a.rank, a.cust))  # customer position, then rank
        cols = {k: v.tolist() for k, v in self._action_columns(sc, a, order, b.prop).items()}
        offer_pos = _pick(sc.offer, a.row[order], -1).tolist()
        channel_pos = _pick(sc.channel, a.row[order], -1).tolist()
        reasons = [b.reasons[i] for i in order.tolist()] if explain and b.reasons is not None else None
        per_customer = Groups.of(a.cust[order], n)
        sup_start = sup_count = None
        if b.suppressed is not None:
            c, o, ch, code = b.suppressed
            sup = Groups.of(c, n)
            sup_start, sup_count = sup.start.tolist(), sup.count.tolist()
            details = self._detail_table()
            sup_offer = self.offer_ids[o].tolist()
            sup_channel = self.channel_ids[ch].tolist()
            sup_reason = np.array(REASONS, dtype=object)[code].tolist()
            sup_detail = details[code, o, ch].tolist()
        docs = []
        starts, counts = per_customer.start.tolist(), per_customer.count.tolist()
        ids, arms, contacted, cold = sc.ids.tolist(), sc.arm.tolist(), b.contacted.tolist(), sc.cold_start.tolist()
        experiment = self.config.policy.experiment.name
        # Documents from already validated values: model_construct skips re-validation.
        for i in range(n):
            greet = salutation(first[i], gender[i])
            actions = [
                self._action(
                    cols["rank"][j], offer_pos[j], channel_pos[j], cols["probability"][j], cols["uplift"][j],
                    cols["boost"][j], cols["expected_value"][j], cols["propensity"][j],
                    list(reasons[j]) if reasons is not None else [], cols["trigger"][j], greet, interest[i],
                )
                for j in range(starts[i], starts[i] + counts[i])
            ]
            suppressed = None
            if sup_start is not None and sup_count is not None:
                lo, hi = sup_start[i], sup_start[i] + sup_count[i]
                suppressed = [
                    Suppressed.model_construct(offer_id=sup_offer[k], channel=sup_channel[k], reason=sup_reason[k], detail=sup_detail[k])
                    for k in range(lo, hi)
                ]
            docs.append(
                RankResponse.model_construct(
                    decision_id=b.decision_ids[i], customer_id=ids[i], at=sc.at, model_version=self._arm_version[arms[i]],
                    experiment=experiment, arm=self.arm_names[arms[i]], contacted=contacted[i], cold_start=cold[i],
                    actions=actions, suppressed=suppressed,
                )
            )
        return docs


def _priority(cust: np.ndarray, key: np.ndarray, forced: np.ndarray) -> np.ndarray:
    """Candidate rows by customer, then priority: forced, then key, then config order (stable ties)."""
    return np.lexsort((np.arange(len(cust)), -key, ~forced, cust))


def _draws(ids: np.ndarray, seed: int | None, at: dt.datetime) -> np.ndarray:
    """Each customer's uniform number for the exploration draw (fresh randomness without ``seed``)."""
    seed_key = key_of("explore", seed if seed is not None else int.from_bytes(os.urandom(8), "little"), at.isoformat())
    return uniform(ids, seed_key)


def _record(history: ContactHistory, ids: np.ndarray, at: dt.datetime, offer_ids: np.ndarray, channel_ids: np.ndarray) -> None:
    """Add the contacts of ``ids`` made at ``at`` to ``history``."""
    history.record_contacts(ids, np.full(len(ids), pd.Timestamp(at).as_unit("us").to_datetime64()), offer_ids, channel_ids)


def _remembered(
    memo: ReasonMemo, alias: str, origin: np.ndarray, o: np.ndarray, ch: np.ndarray,
    compute: Callable[[np.ndarray], list[list[str]]],
) -> list[tuple[str, ...]]:
    """Reason codes of rows ``(origin, o, ch)`` from ``memo``; ``compute(positions)`` gives those it lacks."""
    keys = list(zip([alias] * len(o), origin.tolist(), o.tolist(), ch.tolist(), strict=True))
    found = [memo.get(k) for k in keys]
    missing = np.array([i for i, f in enumerate(found) if f is None], dtype=np.int64)
    if len(missing):
        for i, r in zip(missing.tolist(), compute(missing), strict=True):
            memo.put(keys[i], r)
            found[i] = tuple(r)
    return found  # type: ignore[return-value]


def _positions_in(index: pd.Index, ids: np.ndarray) -> np.ndarray:
    """``index.get_indexer(ids)`` (-1 = absent), by binary search when the index is sorted and unique."""
    values = index.to_numpy()
    if len(values) == 0 or not (index.is_monotonic_increasing and index.is_unique):
        return index.get_indexer(ids)
    at = np.minimum(np.searchsorted(values, ids), len(values) - 1)
    return np.where(values[at] == ids, at, -1)


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)



def complete_features(found: pd.DataFrame, customer_ids: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """Feature rows for ``customer_ids`` in that order, with an all-null row for unknown ids.

    A customer without features is a *cold start*: null consent and reachability
    leave only non-personal channels, and the decision says ``cold_start``.

    Parameters
    ----------
    found
        Rows the feature store returned (``customer_id`` + features).
    customer_ids
        Requested ids.
    columns
        Feature columns when ``found`` is empty (default: those of ``found``).
    """
    ids = np.asarray(customer_ids, dtype=np.int64)
    index = pd.Index(found["customer_id"].to_numpy(dtype=np.int64)) if len(found) else pd.Index([], dtype=np.int64)
    pos = index.get_indexer(ids)
    if (pos >= 0).all():
        return found.take(pos).reset_index(drop=True)
    cols = list(found.columns) if len(found.columns) else ["customer_id", *(columns or [])]
    blank = pd.DataFrame({c: pd.Series([None] * int((pos < 0).sum()), dtype=object) for c in cols})
    blank["customer_id"] = ids[pos < 0]
    known = found.take(pos[pos >= 0]).reset_index(drop=True)
    merged = pd.concat([known, blank], ignore_index=True) if len(known) else blank
    order = pd.Index(merged["customer_id"].to_numpy(dtype=np.int64)).get_indexer(ids)
    return merged.take(order).reset_index(drop=True)
