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

Exploring policies (epsilon, softmax) of contacting arms may also explore
contact versus no action (``exploration.contact_epsilon`` = δ, :func:`draw_contact`):
with an action set, "no action" has probability δ and each row its policy
probability × (1 − δ); without one, the best candidate that passed every rule
has probability δ and "no action" 1 − δ. So the model sees contacts where it
would not contact, and hold-outs where it would, at every contact pressure.

For a batch, :func:`select` draws every customer's choice, then allocates daily
channel capacities and offer volume caps by ranking key: customers who lose a
saturated channel or offer choose again among what is left.
:func:`ranked_actions` lists what a customer is shown: the choice, then the best
of its action set.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nextbest.decisioning.candidates import CODE
from nextbest.decisioning.hashing import key_of, uniform

if TYPE_CHECKING:
    from nextbest.config import Exploration
    from nextbest.decisioning.history import HistoryView

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


def draw_contact(
    groups: Groups, prop: np.ndarray, m: np.ndarray, u: np.ndarray, explore: np.ndarray, share: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`draw`, with the contact-versus-no-action choice explored for the customers of ``explore``.

    An exploring customer whose action set is not empty (``m > 0``) is left
    alone with probability ``share`` and otherwise draws as :func:`draw` does;
    one whose action set is empty but who has candidates is sent the best of
    them with probability ``share``. The customer's one uniform decides both
    steps (``u < share`` is the exploring branch, the rest rescaled to [0, 1)
    for the draw), so a fixed draw still gives a fixed choice, and the returned
    probabilities are exactly those of the choices made.

    Parameters
    ----------
    groups, prop, m, u
        As for :func:`draw` (``prop`` from :func:`propensities`).
    explore
        (n,) whether each customer explores contact versus no action.
    share
        ``exploration.contact_epsilon``, in [0, 1).

    Returns
    -------
    pick
        (n,) chosen row, -1 = no action.
    prop
        (R,) probability that each row is chosen.
    p_none
        (n,) probability of "no action".
    """
    if share <= 0 or not explore.any():
        return draw(groups, prop, m, u), prop, np.where(m > 0, 0.0, 1.0)
    above = explore & (m > 0)
    below = explore & (m == 0) & (groups.count > 0)
    # The rest of [share, 1) stretched over [0, 1): the draw among the action set keeps its own odds.
    rescaled = np.where(above, np.clip((u - share) / (1.0 - share), 0.0, np.nextafter(1.0, 0.0)), u)
    pick = draw(groups, prop, m, rescaled)
    pick = np.where(above & (u < share), -1, pick)
    pick = np.where(below & (u < share), groups.start, pick)
    prop = prop * np.where(above, 1.0 - share, 1.0)[groups.cust]
    first_below = np.zeros(len(prop), dtype=bool)
    first_below[groups.start[below]] = True
    prop = np.where(first_below, share, prop)
    p_none = np.where(above, share, np.where(below, 1.0 - share, np.where(m > 0, 0.0, 1.0)))
    return pick, prop, p_none


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


def priority(cust: np.ndarray, key: np.ndarray, forced: np.ndarray) -> np.ndarray:
    """Candidate rows by customer, then priority: forced, then key, then config order (stable ties)."""
    return np.lexsort((np.arange(len(cust)), -key, ~forced, cust))


def exploration_draws(ids: np.ndarray, seed: int | None, at: dt.datetime) -> np.ndarray:
    """Each customer's uniform number for the exploration draw (fresh randomness without ``seed``)."""
    seed_key = key_of("explore", seed if seed is not None else int.from_bytes(os.urandom(8), "little"), at.isoformat())
    return uniform(ids, seed_key)


def select(
    cust: np.ndarray,
    offer: np.ndarray,
    channel: np.ndarray,
    key: np.ndarray,
    forced: np.ndarray,
    policy: np.ndarray,
    contacts: np.ndarray,
    u: np.ndarray,
    view: HistoryView,
    exploration: Exploration,
    min_expected_value: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Choose a row per customer; allocate capacities; return choice, propensities,
    priority order, action-set membership and rows removed for capacity.

    Parameters
    ----------
    cust, offer, channel
        Customer position, offer and channel index of each candidate row.
    key, forced
        Ranking key of each row and whether a trigger forces it.
    policy, contacts, u
        Per customer: selection policy (GREEDY, EPSILON, SOFTMAX or UNIFORM),
        whether its arm contacts, and its uniform number for the draw. Exploring
        (EPSILON, SOFTMAX) customers of contacting arms also explore contact
        versus no action (``exploration.contact_epsilon``, :func:`draw_contact`).
    view
        Contact history of the customers (remaining channel and offer capacities).
    exploration, min_expected_value
        Exploration settings; the key an unforced row must beat to join the action set.

    Returns
    -------
    chosen, prop, order, in_set, removed, p_none
        Row chosen per customer (-1 = no action), each row's probability of being
        chosen, rows in priority order, action-set membership, suppression code of
        rows lost to capacity, and each customer's probability of "no action".
    """
    n = len(policy)
    # Priority within a customer: forced, then key, then config order (stable ties).
    order = priority(cust, key, forced)
    in_set_sorted = forced[order] | (key[order] > min_expected_value)
    policy = policy.copy()
    has_forced = np.bincount(cust[forced], minlength=n) > 0
    policy[has_forced & (policy != UNIFORM)] = GREEDY
    explore = contacts & ((policy == EPSILON) | (policy == SOFTMAX))
    p_none = np.ones(n)

    prop = np.zeros(len(cust))
    chosen = np.full(n, -1, dtype=np.int64)
    alive = np.ones(len(cust), dtype=bool)
    removed = np.zeros(len(cust), dtype=np.int8)  # suppression code of rows lost to capacity
    ch_left = view.channel_remaining.copy()
    of_left = view.offer_remaining.copy()
    pending = np.ones(n, dtype=bool)
    while pending.any():
        keep = alive[order] & pending[cust[order]]
        rows = order[keep]
        groups = Groups.of(cust[rows], n)
        p_rows, m = propensities(
            groups, key[rows], in_set_sorted[keep], policy,
            top_n=exploration.top_n, epsilon=exploration.epsilon, temperature=exploration.temperature,
        )
        pick, p_rows, none = draw_contact(groups, p_rows, m, u, explore, exploration.contact_epsilon)
        prop[rows] = p_rows
        p_none[pending] = none[pending]
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
    return chosen, prop, order[alive[order]], in_set & alive, removed, p_none


@dataclass(frozen=True)
class RankedActions:
    """Ranked actions of a batch, one entry per action (unordered).

    ``row`` is the candidate row (-1 = the "no action" of a customer with no choice).
    """

    cust: np.ndarray  # customer position in the batch
    rank: np.ndarray
    row: np.ndarray
    explored: np.ndarray


def ranked_actions(
    n: int, chosen: np.ndarray, order: np.ndarray, in_set: np.ndarray, cust: np.ndarray, top_k: int
) -> RankedActions:
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
    # Explored: the draw chose another than the best candidate, or one outside the action set.
    outside = np.zeros(len(rows), dtype=bool)
    outside[rows >= 0] = ~in_set[rows[rows >= 0]]
    explored = (rank == 1) & (rows >= 0) & ((rows != best[who]) | outside)
    return RankedActions(who, rank, rows, explored)
