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
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.decisioning.candidates import CODE, REASONS, PairGrid, PolicyArrays, Targeting, customer_facts, suppression_codes
from nextbest.decisioning.documents import Action, Context, Personalisation, RankResponse, Suppressed
from nextbest.decisioning.hashing import key_of, uniform
from nextbest.decisioning.history import ContactHistory, HistoryView
from nextbest.decisioning.prepared import OFFER_HISTORY_FILL, OfferHistoryRows, PreparedCustomers  # noqa: F401 - re-exported
from nextbest.decisioning.ruleset import RuleSet
from nextbest.decisioning.selection import EPSILON, GREEDY, SOFTMAX, UNIFORM, Groups, draw, fits_capacity, propensities
from nextbest.errors import BadInputError, NotFoundError
from nextbest.models.candidate_matrix import CandidateMatrix
from nextbest.models.scoring import Scorer

_EXPLORATION = {"epsilon_greedy": EPSILON, "softmax": SOFTMAX, "none": GREEDY}


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
        self._grids: dict[tuple[dt.date, str | None], PairGrid] = {}
        self._details: np.ndarray | None = None
        self._profiles: tuple[pd.DataFrame, pd.Index, np.ndarray | None, np.ndarray | None] | None = None
        self._policy_arrays = PolicyArrays.of(config)
        self._offer_pos = {o: i for i, o in enumerate(self.offer_ids.tolist())}
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
        ids = customers.ids
        history = history if history is not None else ContactHistory.empty(self.config)

        grid = self._grid(at.date(), context.channel)
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
        ids, arm, cust, offer, channel, ev = sc.ids, sc.arm, sc.cust, sc.offer, sc.channel, sc.expected_value
        n = len(ids)
        # The rules arm ranks by business value alone; every arm still reports the model's EV.
        key = np.where(self.arm_rules[arm[cust]], sc.gain - sc.cost, ev)
        forced = sc.target.forced[cust, offer]

        chosen, prop, order, in_set, removed = self._select(ids, arm, cust, offer, channel, key, forced, sc.view, seed, sc.at)
        decision_ids = np.char.add(f"{uuid.uuid4().hex}-", np.arange(n).astype(str)).astype(object)
        contacted = (chosen >= 0) & self.arm_contacts[arm]
        if record:
            made = np.flatnonzero(contacted)
            history.record_contacts(
                ids[made], np.full(len(made), pd.Timestamp(sc.at).as_unit("us").to_datetime64()),
                self.offer_ids[offer[chosen[made]]], self.channel_ids[channel[chosen[made]]],
            )
        actions = self._actions(n, chosen, order, in_set, cust, top_k)
        reasons = removed_pairs = None
        if explain:
            reasons = self._reasons(actions, sc)
        if explain if suppressed is None else suppressed:
            removed_pairs = self._suppressed(sc, removed)
        return _Batch(sc, decision_ids, chosen, prop, contacted, actions, reasons, removed_pairs)

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
        order = np.lexsort((np.arange(len(cust)), -key, ~forced, cust))
        in_set_sorted = forced[order] | (key[order] > min_ev)
        policy = self.arm_policy[arm].copy()
        has_forced = np.bincount(cust[forced], minlength=n) > 0
        policy[has_forced & (policy != UNIFORM)] = GREEDY
        seed_key = key_of("explore", seed if seed is not None else int.from_bytes(os.urandom(8), "little"), at.isoformat())
        u = uniform(ids, seed_key)

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
                model_reasons = self._matrix_reasons(alias, matrix, sc, rows[sel])
            else:
                model_reasons = self.scorers[alias].reasons(sc.frame.iloc[rows[sel]], top=3)
            for i, r in zip(sel, model_reasons, strict=True):
                reasons[i] = list(r)
        offers = self.config.offers.offers
        stage_mode = self.config.policy.stages.mode
        offer = sc.offer[rows[real]]
        trig = sc.target.trigger[sc.cust[rows[real]], offer]
        forced = sc.target.forced[sc.cust[rows[real]], offer]
        staged = self.offer_stage[offer] == sc.target.stage[sc.cust[rows[real]]]
        explored = actions.explored[real]
        for k, i in enumerate(real.tolist()):  # only the returned actions: the explained, per-customer path
            o = offers[int(offer[k])]
            if trig[k] >= 0:
                reasons[i].append(f"trigger:{self._trigger_ids[trig[k]]}")
            if forced[k]:
                reasons[i].append("forced")
            if o.eligibility:
                reasons[i].append(f"eligibility:{o.eligibility}")
            if o.segment:
                reasons[i].append(f"segment:{o.segment}")
            if stage_mode == "boost" and staged[k]:
                reasons[i].append(f"stage:{o.stage}")
            if explored[k]:
                reasons[i].append("explore")
        for i in np.flatnonzero(rows < 0).tolist():
            reasons[i] = ["no_positive_expected_value"]
        return reasons

    def _matrix_reasons(
        self, alias: str, matrix: CandidateMatrix, sc: ScoredCandidates, picked: np.ndarray
    ) -> list[list[str]] | list[tuple[str, ...]]:
        """Model reason codes of candidate rows ``picked``, from the customers' memo where it has them."""
        customers = sc.customers
        c, o, ch = sc.cust[picked], sc.offer[picked], sc.channel[picked]
        memo, origin = customers.memo, customers.origin
        if memo is None or origin is None:
            return matrix.reasons(customers.encoded(alias), c, o, ch, self._history_of(customers, c, o), top=3)
        keys = list(zip([alias] * len(picked), origin[c].tolist(), o.tolist(), ch.tolist(), strict=True))
        found = [memo.get(k) for k in keys]
        missing = np.array([i for i, f in enumerate(found) if f is None], dtype=np.int64)
        if len(missing):
            cm, om = c[missing], o[missing]
            computed = matrix.reasons(customers.encoded(alias), cm, om, ch[missing], self._history_of(customers, cm, om), top=3)
            for i, r in zip(missing.tolist(), computed, strict=True):
                memo.put(keys[i], r)
                found[i] = tuple(r)
        return found  # type: ignore[return-value]

    def _suppressed(
        self, sc: ScoredCandidates, removed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(customer position, offer, channel, reason code)`` of every removed pair, customer-major."""
        codes = sc.codes.copy()
        lost = np.flatnonzero(removed)
        codes[sc.cust[lost], sc.pair[lost]] = removed[lost]
        c, p = np.nonzero(codes > 0)
        return c, sc.grid.offer[p], sc.grid.channel[p], codes[c, p].astype(np.int64)

    def _grid(self, day: dt.date, channel: str | None) -> PairGrid:
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
            liked = interest[i]
            actions = []
            for j in range(starts[i], starts[i] + counts[i]):
                offer_id = cols["offer_id"][j]
                personal = None
                if offer_id is not None:
                    # 'none' is the feature's value for "no recent interest".
                    category = liked if isinstance(liked, str) and liked not in ("", "none") else self._offer_category[offer_pos[j]]
                    trigger = cols["trigger"][j]
                    personal = Personalisation.model_construct(
                        salutation=greet, category=category, trigger=trigger if isinstance(trigger, str) else None,
                        message=fill_message(self._offer_message[offer_pos[j]], {"salutation": greet, "category": category}),
                    )
                actions.append(
                    Action.model_construct(
                        rank=cols["rank"][j], offer_id=offer_id, channel=cols["channel"][j],
                        probability=_num(cols["probability"][j]), uplift=_num(cols["uplift"][j]), value=cols["value"][j],
                        lever=cols["lever"][j], boost=cols["boost"][j], cost=cols["cost"][j],
                        expected_value=cols["expected_value"][j], propensity=min(max(cols["propensity"][j], 0.0), 1.0),
                        reasons=list(reasons[j]) if reasons is not None else [], personalisation=personal,
                    )
                )
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
