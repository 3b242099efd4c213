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
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

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
