"""Choosing one action per customer among ranked candidate rows, with its propensity.

Rows arrive sorted by customer, then priority (forced first, then ranking key
descending). Each customer's *action set* is a prefix of its rows: forced rows,
or rows whose key beats ``arbitration.min_expected_value``. The policy puts a
probability on the first ``m`` rows of the set and draws one by inverse CDF with
the customer's uniform number, so logged propensities over a customer's
candidates always sum to 1 and a fixed draw gives a fixed choice.

Policies
--------
greedy        the best row, propensity 1 (forced triggers, the ``rules`` arm,
              exploration ``none``).
epsilon       1 - ε + ε/m for the best, ε/m for each other of the top ``m``.
softmax       ∝ exp((key - best) / temperature) over the top ``m``.
uniform       1/m over *every* candidate (the ``random`` arm, EV ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GREEDY, EPSILON, SOFTMAX, UNIFORM = 0, 1, 2, 3


@dataclass(frozen=True)
class Groups:
    """Row → customer bookkeeping of a sorted candidate block."""

    cust: np.ndarray  # (R,) customer position of each row
    start: np.ndarray  # (n,) first row of each customer (0 when it has none)
    count: np.ndarray  # (n,) rows of each customer
    pos: np.ndarray  # (R,) position of each row within its customer

    @classmethod
    def of(cls, cust: np.ndarray, n: int) -> Groups:
        count = np.bincount(cust, minlength=n)
        start = np.zeros(n, dtype=np.int64)
        np.cumsum(count[:-1], out=start[1:])
        pos = np.arange(len(cust), dtype=np.int64) - start[cust]
        return cls(cust, start, count, pos)

    @classmethod
    def one(cls, rows: int) -> Groups:
        """The bookkeeping of ``rows`` rows of a single customer (what ``of(zeros(rows), 1)`` gives)."""
        pos = np.arange(rows, dtype=np.int64)
        return cls(np.zeros(rows, dtype=np.int64), np.zeros(1, dtype=np.int64), np.array([rows]), pos)


def propensities(
    groups: Groups,
    key: np.ndarray,
    in_set: np.ndarray,
    policy: np.ndarray,
    *,
    top_n: int,
    epsilon: float,
    temperature: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Selection probability of each row, and the size ``m`` of each customer's draw.

    Parameters
    ----------
    groups
        Row bookkeeping (rows sorted by customer, then priority).
    key
        Ranking key per row (higher is better).
    in_set
        Whether the row is in its customer's action set (a prefix of its rows).
    policy
        Per customer: GREEDY, EPSILON, SOFTMAX or UNIFORM.
    top_n, epsilon, temperature
        Exploration settings.

    Returns
    -------
    prop
        (R,) probability that the row is chosen; sums to 1 per customer with m > 0.
    m
        (n,) number of rows with positive probability (0 = no action).
    """
    n = len(groups.count)
    cust, pos = groups.cust, groups.pos
    set_size = np.bincount(cust[in_set], minlength=n)
    m = np.where(policy == UNIFORM, groups.count, np.minimum(set_size, top_n))
    m = np.where(policy == GREEDY, np.minimum(m, 1), m)
    row_policy = policy[cust]
    row_m = m[cust]
    live = pos < row_m
    prop = np.zeros(len(cust))
    first = live & (pos == 0)
    greedy = row_policy == GREEDY
    prop[greedy & first] = 1.0
    uni = live & (row_policy == UNIFORM)
    prop[uni] = 1.0 / row_m[uni]
    eps = live & (row_policy == EPSILON)
    prop[eps] = epsilon / row_m[eps]
    prop[eps & first] += 1.0 - epsilon
    soft = live & (row_policy == SOFTMAX)
    if soft.any():
        best = key[groups.start[cust]]
        w = np.where(soft, np.exp(np.minimum((key - best) / temperature, 0.0)), 0.0)
        total = np.bincount(cust, weights=w, minlength=n)
        prop[soft] = w[soft] / total[cust[soft]]
    return prop, m


def draw(groups: Groups, prop: np.ndarray, m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row chosen for each customer by inverse CDF at ``u`` (-1 where m = 0)."""
    n = len(m)
    if len(prop) == 0:  # the rules left no candidate at all (e.g. a personal inbound channel, no consent)
        return np.full(n, -1, dtype=np.int64)
    cum = np.cumsum(prop)
    base = np.where(groups.start > 0, cum[np.maximum(groups.start - 1, 0)], 0.0)
    base = np.where(groups.count > 0, base, 0.0)
    within = cum - base[groups.cust]
    passed = (within <= u[groups.cust]) & (groups.pos < m[groups.cust])
    idx = np.minimum(np.bincount(groups.cust[passed], minlength=n), np.maximum(m - 1, 0))
    return np.where(m > 0, groups.start + idx, -1)


def fits_capacity(slot: np.ndarray, left: np.ndarray) -> np.ndarray:
    """For rows in priority order, whether each still fits its slot's remaining capacity.

    Parameters
    ----------
    slot
        Slot (channel or offer index) of each row, rows in priority order.
    left
        Remaining capacity per slot (``inf`` = unlimited).
    """
    order = np.argsort(slot, kind="stable")
    counts = np.bincount(slot, minlength=len(left))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(slot), dtype=np.int64)
    rank[order] = np.arange(len(slot)) - starts[slot[order]]
    return rank < left[slot]
