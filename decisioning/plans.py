"""Per-customer decision plans: what a decision needs that no contact changes.

A customer's candidates, the rules that read only their features (consent,
reachability, eligibility, segments, journey stage), the triggers of a context,
the model's scores and the expected values depend on the feature snapshot, the
models and the context alone. A :class:`CustomerPlan` holds them, ordered by
priority, for one customer and context, over every offer;
:meth:`DecisionEngine.rank_planned
<nextbest.decisioning.engine.DecisionEngine.rank_planned>` then applies only
what does change between requests (offer validity on the decision day, the
contact policy over the live history, capacities, the exploration draw) and
gives the same document as
:meth:`DecisionEngine.rank <nextbest.decisioning.engine.DecisionEngine.rank>`.

The scoring service keeps plans in a :class:`PlanCache` per loaded state (a
refresh starts an empty one), filled on a customer's first request.
:func:`plans_of` builds the plans of a batch from its scored candidates;
:func:`rank_plan` ranks one customer from their plan.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from nextbest.decisioning.candidates import PairGrid, contact_blocked
from nextbest.decisioning.documents import RankResponse
from nextbest.decisioning.history import ContactHistory, HistoryView, record_contacts_at
from nextbest.decisioning.prepared import PreparedCustomers
from nextbest.decisioning.reasons import NO_ACTION_REASONS, head_reasons, planned_reasons, rule_reasons
from nextbest.decisioning.responses import action_document, salutation
from nextbest.decisioning.scoring import ScoredCandidates, ranking_keys
from nextbest.decisioning.selection import (
    EPSILON, GREEDY, SOFTMAX, UNIFORM, Groups, draw_contact, exploration_draws, priority, propensities,
)

if TYPE_CHECKING:
    from nextbest.decisioning.engine import DecisionEngine

#: Columns of :attr:`CustomerPlan.pairs`.
OFFER, CHANNEL, TRIGGER, FORCED = range(4)
#: Columns of :attr:`CustomerPlan.values`.
KEY, PROBABILITY, UPLIFT, BOOST, EXPECTED_VALUE = range(5)

#: What a plan is kept under: customer id, context channel, context event.
PlanKey = tuple[int, "str | None", "str | None"]


class CustomerPlan(NamedTuple):
    """One customer's candidates that pass every rule but the contact policy, in priority order.

    A named tuple of arrays and scalars: the garbage collector stops tracking
    it, so a full cache adds nothing to its scans.

    Attributes
    ----------
    customer_id
        The customer.
    origin
        The customer's row in the prepared block the reason memo belongs to (-1: none).
    arm
        Experiment arm served (index into the configuration's arms).
    cold_start
        No feature known.
    stage
        Journey stage index.
    greeting
        Salutation of the customer's messages.
    interest
        ``interest_category`` of the customer (``None`` when unknown).
    pairs
        (R, 4) int16 per candidate, best first (forced, then ranking key, then
        configuration order): offer and channel index, the trigger that fired for
        the offer (-1: none), and whether a ``force`` trigger fired (1) (columns
        :data:`OFFER`, :data:`CHANNEL`, :data:`TRIGGER`, :data:`FORCED`).
    values
        (R, 5) ranking key, probability, uplift, boost and expected value (columns
        :data:`KEY`, :data:`PROBABILITY`, :data:`UPLIFT`, :data:`BOOST`, :data:`EXPECTED_VALUE`).
    reasons
        Model reason codes of the first candidates (the head of the action set,
        what a request returns unless the contact policy removed some of it);
        the others' are computed when returned.
    pressure
        The contact pressure the scores were made at, ``(feature, value)``: a
        contact since (or one ageing out of a window) makes the plan stale, and
        :func:`rank_plans` builds it again (:meth:`DecisionEngine.stale_plans
        <nextbest.decisioning.engine.DecisionEngine.stale_plans>`).
    context
        The context ``(channel, event)`` the plan is for.
    """

    customer_id: int
    origin: int
    arm: int
    cold_start: bool
    stage: int
    greeting: str
    interest: str | None
    pairs: np.ndarray
    values: np.ndarray
    reasons: tuple[tuple[str, ...], ...] = ()
    pressure: tuple[tuple[str, float], ...] = ()
    context: tuple[str | None, str | None] = (None, None)

    @property
    def nbytes(self) -> int:
        """Bytes held by the plan's arrays."""
        return self.pairs.nbytes + self.values.nbytes


class PlanCache:
    """Plans by :data:`PlanKey`, least recently used dropped first; not thread-safe.

    Parameters
    ----------
    size
        Most plans kept (0 keeps none).
    reasons
        Leading candidates of the action set whose reason codes a plan holds.
    """

    def __init__(self, size: int, reasons: int = 0) -> None:
        self.size = size
        self.reasons = reasons
        #: Plans found and plans that had to be built (a benchmark's hit rate).
        self.hits = 0
        self.misses = 0
        self._plans: OrderedDict[PlanKey, CustomerPlan] = OrderedDict()

    def __len__(self) -> int:
        return len(self._plans)

    def get(self, key: PlanKey) -> CustomerPlan | None:
        """The plan of ``key``, or ``None`` when not built yet."""
        plan = self._plans.get(key)
        if plan is None:
            self.misses += 1
        else:
            self.hits += 1
            self._plans.move_to_end(key)
        return plan

    def put(self, key: PlanKey, plan: CustomerPlan) -> None:
        """Keep ``plan`` under ``key``, dropping the least recently used beyond ``size``."""
        if self.size <= 0:
            return
        self._plans[key] = plan
        self._plans.move_to_end(key)
        while len(self._plans) > self.size:
            self._plans.popitem(last=False)

    def drop(self, customer_id: int) -> int:
        """Forget every plan of ``customer_id`` (an erasure); returns how many there were."""
        keys = [k for k in self._plans if k[0] == customer_id]
        for key in keys:
            del self._plans[key]
        return len(keys)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached plans' arrays (the cache's memory, less ~0.5 kB of objects a plan)."""
        return sum(p.nbytes for p in self._plans.values())


def plans_of(
    engine: DecisionEngine, sc: ScoredCandidates, names: tuple[list[object], list[object]], reasons: int,
    context: tuple[str | None, str | None] = (None, None),
) -> list[CustomerPlan]:
    """The plan of each customer of ``sc`` (candidates scored with no contact history, over every offer,
    at the contact pressure ``sc.customers`` hold).

    ``names`` are the customers' ``first_name`` and ``gender`` (the greeting);
    ``reasons`` as for :meth:`DecisionEngine.plans <nextbest.decisioning.engine.DecisionEngine.plans>`;
    ``context`` the plans' ``(channel, event)``.
    """
    customers = sc.customers
    pressure = [(c, v.tolist()) for c, v in customers.pressure.items()]
    key, forced = ranking_keys(sc, engine.arm_rules)
    order = priority(sc.cust, key, forced)
    cust, offer = sc.cust[order], sc.offer[order]
    values = np.column_stack([key, sc.probability, sc.uplift, sc.boost, sc.expected_value])[order]
    pairs = np.column_stack([offer, sc.channel[order], sc.target.trigger[cust, offer], forced[order]]).astype(np.int16)
    n = len(sc.ids)
    groups = Groups.of(cust, n)
    first, gender = names
    # Not taken from a larger block: the customers are their own block.
    origin = customers.origin if customers.origin is not None else np.arange(n)
    # The action set is a prefix of a customer's rows (forced first, then key): its head's reason codes.
    in_set = forced[order] | (values[:, KEY] > engine.config.policy.arbitration.min_expected_value)
    head = np.flatnonzero(in_set & (groups.pos < reasons))
    held = head_reasons(engine, sc, order[head])
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
                pressure=tuple((c, v[i]) for c, v in pressure), context=context,
            )
        )
    return plans


def rank_plan(
    engine: DecisionEngine,
    plan: CustomerPlan,
    customers: PreparedCustomers,
    at: dt.datetime,
    valid: np.ndarray,
    top_k: int,
    seed: int | None,
    history: ContactHistory,
) -> RankResponse:
    """:meth:`DecisionEngine.rank_planned <nextbest.decisioning.engine.DecisionEngine.rank_planned>`
    at ``at`` (a ``datetime``), where ``valid`` says which offers may be proposed that day."""
    return rank_plans(engine, [plan], customers, at, valid, [top_k], [seed], history)[0]


def rank_plans(
    engine: DecisionEngine,
    plans: Sequence[CustomerPlan],
    customers: PreparedCustomers,
    at: dt.datetime,
    valid: np.ndarray,
    top_k: Sequence[int],
    seed: Sequence[int | None],
    history: ContactHistory,
) -> list[RankResponse]:
    """Rank several *distinct* customers at ``at`` from their plans, as consecutive :func:`rank_plan` calls do.

    One customer's contact changes another's decision only through an offer's
    volume cap or a channel's daily capacity. While every cap the batch's
    candidates touch has at least as many contacts left as the batch has
    customers, no decision of the batch can see another's contact, and the
    customers are ranked together: one history view, one contact-policy check
    and one draw for all, which is what a request of the service costs most.
    Otherwise they are ranked one after the other.

    Parameters
    ----------
    plans
        The customers' plans (distinct customers).
    top_k, seed
        Per plan, as for :meth:`DecisionEngine.rank`.
    """
    # Contacted (or a contact aged out) since a plan was scored: scored again at today's pressure.
    plans = engine.refreshed(plans, customers, at, history)[0]
    n = len(plans)
    ids = np.fromiter((p.customer_id for p in plans), dtype=np.int64, count=n)
    sizes = np.fromiter((len(p.pairs) for p in plans), dtype=np.int64, count=n)
    pairs = np.concatenate([p.pairs for p in plans]) if n > 1 else plans[0].pairs
    offer, channel = pairs[:, OFFER], pairs[:, CHANNEL]
    view = history.view(ids, at)
    if n > 1 and _caps_bind(view, offer, channel, n):
        return [rank_plans(engine, [p], customers, at, valid, [k], [s], history)[0]
                for p, k, s in zip(plans, top_k, seed, strict=True)]
    cust = np.repeat(np.arange(n), sizes)
    values = np.concatenate([p.values for p in plans]) if n > 1 else plans[0].values
    # Rows in the (possibly re-sorted) order ranked here, as positions in the plans' rows.
    perm = np.arange(len(cust))
    trigger = pairs[:, TRIGGER].astype(np.int64)
    cooling = (trigger >= 0) & view.trigger_cooling[cust, np.maximum(trigger, 0)]
    if cooling.any():
        pairs, values, trigger, perm = _quiet_triggers(engine, plans, cust, pairs, values, trigger, cooling)
        offer, channel = pairs[:, OFFER], pairs[:, CHANNEL]
    # (n, rows) for every customer against every row of the batch: each row's own customer is its entry.
    blocked = contact_blocked(engine.config, PairGrid(offer, channel), view, engine._policy_arrays)[cust, np.arange(len(cust))]
    live = np.flatnonzero(~blocked & valid[offer])
    values = values[live]
    forced = pairs[live, FORCED].astype(bool)
    key = values[:, KEY]
    in_set = forced | (key > engine.config.policy.arbitration.min_expected_value)
    groups = Groups.of(cust[live], n)
    policy = np.array([engine.arm_policy[p.arm] for p in plans])
    # A forced trigger is chosen for sure, except by the uniform (random) arm.
    has_forced = np.bincount(groups.cust[forced], minlength=n) > 0
    policy = np.where((policy != UNIFORM) & has_forced, GREEDY, policy)
    exploration = engine.config.policy.exploration
    prop, m = propensities(
        groups, key, in_set, policy, top_n=exploration.top_n, epsilon=exploration.epsilon,
        temperature=exploration.temperature,
    )
    u = np.empty(n)
    for s in set(seed):
        mine = np.fromiter((x == s for x in seed), dtype=bool, count=n)
        u[mine] = exploration_draws(ids[mine], s, at)
    arm_contacts = engine.arm_contacts[np.array([p.arm for p in plans])].astype(bool)
    explore = arm_contacts & ((policy == EPSILON) | (policy == SOFTMAX))
    picks, prop, p_none = draw_contact(groups, prop, m, u, explore, exploration.contact_epsilon)
    offer, channel = offer[live], channel[live]
    contacted = (picks >= 0) & arm_contacts
    if contacted.any():
        chosen = picks[contacted]
        record_contacts_at(history, ids[contacted], at, engine.offer_ids[offer[chosen]], engine.channel_ids[channel[chosen]])
    docs = []
    for i, plan in enumerate(plans):
        rows = slice(int(groups.start[i]), int(groups.start[i] + groups.count[i]))
        pick = int(picks[i]) - rows.start if picks[i] >= 0 else -1
        docs.append(_document(
            engine, plan, customers, at, top_k[i], bool(contacted[i]), pick, perm[live[rows]] - int(sizes[:i].sum()),
            values[rows], forced[rows], in_set[rows], prop[rows], offer[rows], channel[rows], trigger[live[rows]],
            float(p_none[i]),
        ))
    return docs


def _quiet_triggers(
    engine: DecisionEngine, plans: Sequence[CustomerPlan], cust: np.ndarray, pairs: np.ndarray, values: np.ndarray,
    trigger: np.ndarray, cooling: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plan rows with the triggers that are within their re-fire cool-down taken back, re-sorted by priority.

    A plan is built with no contact history, so every trigger whose event is on
    fired in it. Where the history now says the trigger's offer went out within
    its cool-down, the row is valued again without the trigger's boost (and
    without its force), with the arithmetic of
    :func:`~nextbest.decisioning.scoring.score_grid`, which applies the same
    history to the same triggers; ties keep the configuration's pair order.
    Exact when no offer is named by two triggers (the engine then lets the
    other trigger fire instead; a plan does not know whether its event is on).

    Returns
    -------
    pairs, values, trigger, perm
        The rows in their new priority order, and each one's position in the input.
    """
    pairs, values, trigger = pairs.copy(), values.copy(), trigger.copy()
    config = engine.config
    rows = np.flatnonzero(cooling)
    offer, channel, who = pairs[rows, OFFER].astype(np.int64), pairs[rows, CHANNEL].astype(np.int64), cust[rows]
    stage = np.array([p.stage for p in plans])[who]
    stages = config.policy.stages
    boost = np.ones(len(rows))
    if stages.mode == "boost":
        boost = boost * np.where(engine.offer_stage[offer] == stage, stages.boost, 1.0)
    gain = engine.offer_value[offer] * engine.offer_lever[offer] * boost
    cost = engine.channel_cost[channel]
    p = values[rows, UPLIFT] if config.policy.arbitration.objective == "uplift" else values[rows, PROBABILITY]
    expected = p * gain - cost
    rules = engine.arm_rules[np.array([pl.arm for pl in plans])[who]]
    values[rows, KEY] = np.where(rules, gain - cost, expected)
    values[rows, EXPECTED_VALUE] = expected
    values[rows, BOOST] = boost
    pairs[rows, FORCED] = 0
    trigger[rows] = -1
    pairs[:, TRIGGER] = trigger
    # Ties in the configuration's pair order, as the engine's grid has them.
    grid = engine._grid(None, None)
    order_of = np.zeros((len(engine.offer_ids), len(engine.channel_ids)), dtype=np.int64)
    order_of[grid.offer, grid.channel] = np.arange(len(grid))
    tie = order_of[pairs[:, OFFER].astype(np.int64), pairs[:, CHANNEL].astype(np.int64)]
    perm = np.lexsort((tie, -values[:, KEY], ~pairs[:, FORCED].astype(bool), cust))
    return pairs[perm], values[perm], trigger[perm], perm


def _caps_bind(view: HistoryView, offer: np.ndarray, channel: np.ndarray, n: int) -> bool:
    """Whether a volume cap or daily capacity of these rows has fewer than ``n`` contacts left."""
    return bool((view.offer_remaining[offer] < n).any() or (view.channel_remaining[channel] < n).any())


def _document(
    engine: DecisionEngine, plan: CustomerPlan, customers: PreparedCustomers, at: dt.datetime, top_k: int,
    contacted: bool, pick: int, live: np.ndarray, values: np.ndarray, forced: np.ndarray, in_set: np.ndarray,
    prop: np.ndarray, offer: np.ndarray, channel: np.ndarray, trigger: np.ndarray, p_none: float = 1.0,
) -> RankResponse:
    """One customer's decision document: ``pick`` (a row of its live candidates, -1 = no action), then the
    best of its action set. ``live`` are those rows' positions in the plan, ``trigger`` the trigger that fired
    for each (-1: none), ``p_none`` the probability of "no action"."""
    # The choice (or "no action"), then the best of the action set; as in selection.ranked_actions.
    rows = [pick, *[r for r in np.flatnonzero(in_set).tolist() if r != pick][: top_k - 1]]
    real = np.array([r for r in rows if r >= 0], dtype=np.int64)
    o, ch = offer[real], channel[real]
    model = iter(planned_reasons(engine, engine._arm_alias[plan.arm], plan, customers, live[real], o, ch))
    columns = zip(
        o.tolist(), ch.tolist(), values[real].tolist(), prop[real].tolist(), trigger[real].tolist(),
        forced[real].tolist(), (engine.offer_stage[o] == plan.stage).tolist(), strict=True,
    )
    actions = []
    for rank, row in enumerate(rows, start=1):
        if row < 0:
            actions.append(action_document(
                engine, rank, -1, -1, np.nan, np.nan, 1.0, 0.0, p_none, list(NO_ACTION_REASONS), None, "", None,
            ))
            continue
        oi, ci, v, p, trig, forced_row, staged = next(columns)
        # Explored: the draw chose another than the best candidate, or one outside the action set.
        explored = rank == 1 and (row > 0 or not in_set[row])
        reasons = [*next(model), *rule_reasons(engine, oi, trig, forced_row, staged, explored)]
        actions.append(
            action_document(
                engine, rank, oi, ci, v[PROBABILITY], v[UPLIFT], v[BOOST], v[EXPECTED_VALUE], p, reasons,
                engine._trigger_ids[trig], plan.greeting, plan.interest,
            )
        )
    return RankResponse.model_construct(
        decision_id=f"{uuid.uuid4().hex}-0", customer_id=plan.customer_id, at=at,
        model_version=engine._arm_version[plan.arm], experiment=engine.config.policy.experiment.name,
        arm=engine.arm_names[plan.arm], contacted=contacted, cold_start=plan.cold_start, actions=actions,
        suppressed=None,
    )
