"""The decision engine: one code path for the scoring service and batch campaigns.

:meth:`DecisionEngine.decide` ranks a whole batch at once:

1. candidates   every customer × every (offer, channel) pair valid at ``at``;
2. rules        consent, reachability, eligibility, segments, journey stage and the
                contact policy remove pairs (:mod:`~nextbest.decisioning.candidates`);
3. scoring      the surviving rows go to the customer's arm's :class:`Scorer`;
4. arbitration  EV = (uplift or P) × value × lever × boost − cost
                (steps 1-4: :mod:`~nextbest.decisioning.scoring`);
5. selection    exploration draws one action per customer and logs its propensity;
                daily channel capacities and offer volume caps are then allocated
                by EV, and customers who lose a saturated channel choose again
                (:mod:`~nextbest.decisioning.selection`);
6. output       one decision row per customer (``decisions`` table) and the top-k
                ranked actions with their terms, reasons and suppressions
                (:mod:`~nextbest.decisioning.responses`; reason codes from
                :mod:`~nextbest.decisioning.reasons`).

:meth:`DecisionEngine.rank` wraps it into :class:`RankResponse` documents;
:meth:`DecisionEngine.plans` and :meth:`DecisionEngine.rank_planned` decide one
customer at a time from a per-customer plan (:mod:`~nextbest.decisioning.plans`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.decisioning.candidates import PairGrid, PolicyArrays, customer_facts
from nextbest.decisioning.documents import Context, RankResponse
from nextbest.decisioning.history import ContactHistory, record_contacts_at
from nextbest.decisioning.plans import CustomerPlan, plans_of, rank_plan, rank_plans
from nextbest.decisioning.prepared import (  # noqa: F401 - complete_features, OFFER_HISTORY_FILL, ReasonMemo re-exported
    OFFER_HISTORY_FILL, OfferHistoryRows, PreparedCustomers, ReasonMemo, complete_features,
)
from nextbest.decisioning.reasons import (  # noqa: F401 - NO_ACTION_REASONS re-exported
    NO_ACTION_REASONS, action_reasons, suppressed_pairs, suppression_details,
)
from nextbest.decisioning.responses import (  # noqa: F401 - Decisions, salutation, fill_message re-exported
    DecidedBatch, Decisions, ProfileLookup, decision_frames, fill_message, rank_documents, salutation,
)
from nextbest.decisioning.ruleset import RuleSet
from nextbest.decisioning.scoring import ScoredCandidates, assign_arms, ranking_keys, score_grid  # noqa: F401 - assign_arms re-exported
from nextbest.decisioning.selection import EPSILON, GREEDY, SOFTMAX, UNIFORM, exploration_draws, ranked_actions, select
from nextbest.errors import BadInputError, NotFoundError
from nextbest.features.pressure import pressure_features
from nextbest.models.candidate_matrix import CandidateMatrix, CustomerEncoder
from nextbest.models.scoring import Scorer

_EXPLORATION = {"epsilon_greedy": EPSILON, "softmax": SOFTMAX, "none": GREEDY}


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
        # One more arm after the configured ones: the universal control group, decided like a control arm (the
        # action it would have been sent is logged, with the default model) and never contacted.
        self.universal_arm = len(arms)
        self.arm_served = np.append(self.arm_served, self.universal_arm)
        self.arm_scorer.append(default_alias)
        explore = _EXPLORATION[config.policy.exploration.method]
        self.arm_policy = np.array(
            [UNIFORM if a.policy == "random" else GREEDY if a.policy == "rules" else explore for a in arms] + [explore]
        )
        self.arm_rules = np.array([a.policy == "rules" for a in arms] + [False])
        self.arm_contacts = np.array([a.policy != "control" for a in arms] + [False])
        self.arm_names = np.array([a.name for a in arms] + [config.policy.universal_control.name], dtype=object)
        # Everything below depends on the config alone: computed here once, not per decision.
        self._arm_alias = np.array(self.arm_scorer, dtype=object)
        self._arm_version = np.array([self.scorers[a].model_version for a in self.arm_scorer], dtype=object)
        self._trigger_ids = np.array([t.id for t in config.policy.triggers] + [None], dtype=object)
        self._offer_category = [o.category for o in offers]
        self._offer_message = [o.message for o in offers]
        self._grids: dict[tuple[dt.date | None, str | None], PairGrid] = {}
        self._validity: dict[dt.date, np.ndarray] = {}
        self._details: np.ndarray | None = None
        self._profiles = ProfileLookup()
        self._policy_arrays = PolicyArrays.of(config)
        self._offer_pos = {o: i for i, o in enumerate(self.offer_ids.tolist())}
        # Python scalars for the documents (what .tolist() of the arrays gives).
        self._offer_list, self._channel_list = self.offer_ids.tolist(), self.channel_ids.tolist()
        self._value_list, self._lever_list = self.offer_value.tolist(), self.offer_lever.tolist()
        self._cost_list = self.channel_cost.tolist()
        self._no_history: ContactHistory | None = None
        #: Contact-pressure features, served from the contact history at each decision's time.
        self.pressure = pressure_features(config)
        #: Reason codes :meth:`rank_planned` found in plans (the service's metrics read it).
        self.reasons_from_plans = 0
        #: Plans scored again because their customer's contact pressure changed (:meth:`refreshed`).
        self.plans_rebuilt = 0
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
        encoders = {alias: CustomerEncoder(m, tuple(columns)) for alias, m in self.matrix.items()}
        pressure = {
            f.name: features[f.name].to_numpy(dtype=float, na_value=np.nan) for f in self.pressure if f.name in features.columns
        }
        own = pd.Index(ids)

        def frame_of(wanted: np.ndarray) -> pd.DataFrame:
            # Usually the whole frame; a subset of its customers when only some rows need encoding again.
            if len(wanted) == len(ids) and (wanted == ids).all():
                return features
            return features.take(own.get_indexer(wanted)).reset_index(drop=True)

        return PreparedCustomers(
            ids, facts, ~known.any(axis=1), interest, history, frame_of, encoders, pressure=pressure
        )

    def pressured(self, customers: PreparedCustomers, history: ContactHistory, at: dt.datetime) -> PreparedCustomers:
        """``customers`` with their contact pressure at ``at`` counted from ``history``, in place of the
        snapshot's (a customer contacted at 10:00 is a contacted customer at 11:00).

        The counts are the training set's (:mod:`nextbest.features.pressure`): what the models learnt
        pressure as is what they are served.
        """
        names = [f for f in self.pressure if f.name in customers.pressure]
        if not names:
            return customers
        return customers.with_pressure(history.pressure(customers.ids, at, names))

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
        customers = self.pressured(customers, history, at)
        return score_grid(self, customers, at, context, history, self._grid(at.date(), context.channel))

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
        return decision_frames(self, b, self._detail_table() if explain else None)

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
        names = self._profiles.columns(profiles, b.sc.ids)
        return rank_documents(self, b, names, self._detail_table() if b.suppressed is not None else None, explain)

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
    ) -> DecidedBatch:
        """Score, select, record and rank a batch; the arrays :meth:`decide` and :meth:`rank` present."""
        history = history if history is not None else ContactHistory.empty(self.config)
        sc = self.score_candidates(features, at, context=context, history=history, offer_history=offer_history)
        ids, arm, cust, offer, channel = sc.ids, sc.arm, sc.cust, sc.offer, sc.channel
        n = len(ids)
        key, forced = ranking_keys(sc, self.arm_rules)

        policy = self.config.policy
        chosen, prop, order, in_set, removed, p_none = select(
            cust, offer, channel, key, forced, self.arm_policy[arm], self.arm_contacts[arm], exploration_draws(ids, seed, sc.at),
            sc.view, policy.exploration, policy.arbitration.min_expected_value,
        )
        decision_ids = np.char.add(f"{uuid.uuid4().hex}-", np.arange(n).astype(str)).astype(object)
        contacted = (chosen >= 0) & self.arm_contacts[arm]
        if record:
            made = np.flatnonzero(contacted)
            record_contacts_at(history, ids[made], sc.at, self.offer_ids[offer[chosen[made]]], self.channel_ids[channel[chosen[made]]])
        actions = ranked_actions(n, chosen, order, in_set, cust, top_k)
        reasons = removed_pairs = None
        if explain:
            reasons = action_reasons(self, actions, sc)
        if explain if suppressed is None else suppressed:
            removed_pairs = suppressed_pairs(sc, removed)
        return DecidedBatch(sc, decision_ids, chosen, prop, contacted, actions, reasons, removed_pairs, p_none)

    # ------------------------------------------------------------------ plans (one customer at a time)
    @property
    def plannable(self) -> bool:
        """Whether :meth:`rank_planned` can serve every arm (each arm's scorer has a matrix path)."""
        return all(alias in self.matrix for alias in self.arm_scorer)

    def plans(
        self, customers: PreparedCustomers, at: dt.datetime, context: Context | None = None,
        profiles: pd.DataFrame | None = None, reasons: int = 0, history: ContactHistory | None = None,
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
        history
            Contact history the plans' contact pressure is counted from at ``at``
            (``None``: no contact); a plan serves until that pressure changes.
        """
        if self._no_history is None:
            self._no_history = ContactHistory.empty(self.config)
        context = context or Context()
        at = pd.Timestamp(at).to_pydatetime()
        customers = self.pressured(customers, history if history is not None else self._no_history, at)
        # Every offer, valid at ``at`` or not: validity is a request's check, so a plan serves any day.
        sc = score_grid(self, customers, at, context, self._no_history, self._grid(None, context.channel))
        return plans_of(self, sc, self._profiles.columns(profiles, sc.ids), reasons, (context.channel, context.event))

    def stale_plans(self, plans: Sequence[CustomerPlan], history: ContactHistory, at: dt.datetime) -> np.ndarray:
        """Positions of the ``plans`` scored at another contact pressure than ``history`` has at ``at``."""
        need = [i for i, p in enumerate(plans) if p.pressure and not p.cold_start]
        if not need:
            return np.zeros(0, dtype=np.int64)
        held = dict(plans[need[0]].pressure)
        names = [f for f in self.pressure if f.name in held]
        ids = np.fromiter((plans[i].customer_id for i in need), dtype=np.int64, count=len(need))
        live = history.pressure(ids, at, names)
        stale = [i for k, i in enumerate(need) if any(live[c][k] != v for c, v in plans[i].pressure)]
        return np.array(stale, dtype=np.int64)

    def refreshed(
        self, plans: Sequence[CustomerPlan], customers: PreparedCustomers, at: dt.datetime, history: ContactHistory
    ) -> tuple[list[CustomerPlan], np.ndarray]:
        """``plans`` (distinct customers per context) with the stale ones (:meth:`stale_plans`) built again at
        ``at``, and their positions.

        The stale plans of a context are built together, in one pass: a customer is contacted on most
        requests, so a service rebuilds about as many plans as it ranks. ``customers`` is the prepared
        block the plans' ``origin`` indexes.
        """
        stale = self.stale_plans(plans, history, at)
        out = list(plans)
        by_context: dict[tuple[str | None, str | None], list[int]] = {}
        for i in stale.tolist():
            by_context.setdefault(plans[i].context, []).append(i)
        for (channel, event), members in by_context.items():
            origin = np.fromiter((plans[i].origin for i in members), dtype=np.int64, count=len(members))
            ids = np.fromiter((plans[i].customer_id for i in members), dtype=np.int64, count=len(members))
            reasons = max(len(plans[i].reasons) for i in members)
            fresh = self.plans(customers.take(origin, ids=ids), at, Context(channel=channel, event=event), None, reasons, history)
            for i, plan in zip(members, fresh, strict=True):
                out[i] = plan._replace(origin=plans[i].origin, greeting=plans[i].greeting)
        self.plans_rebuilt += len(stale)
        return out, stale

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
        return rank_plan(self, plan, customers, at, self._valid_offers(at.date()), top_k, seed, history)

    def rank_planned_many(
        self,
        plans: Sequence[CustomerPlan],
        customers: PreparedCustomers,
        at: dt.datetime,
        top_k: Sequence[int],
        seed: Sequence[int | None],
        *,
        history: ContactHistory,
    ) -> list[RankResponse]:
        """:meth:`rank_planned` for several distinct customers at one time, in one pass where caps allow.

        The documents equal those of consecutive :meth:`rank_planned` calls in this order.
        """
        at = pd.Timestamp(at).to_pydatetime()
        return rank_plans(self, plans, customers, at, self._valid_offers(at.date()), top_k, seed, history)

    # ------------------------------------------------------------------ per-day and per-config tables, cached
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
        if self._details is None:
            self._details = suppression_details(self.config)
        return self._details
