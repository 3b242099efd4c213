"""Batch campaign planning: the best set of contacts under a budget and capacities.

Given the scored candidates of a population (the same rules and scores as real
time ranking), choose ``x[i] ∈ {0, 1}`` per candidate to

    maximise   Σ EV[i] · x[i]
    subject to Σ_{i of customer c} x[i]               ≤ min(k, contacts left to c)   for every customer
               Σ_{i of c on channel h} x[i]            ≤ channel contacts left to c   for every customer, capped channel
               Σ_{i of c with offer o} x[i]            ≤ 1                            (no offer twice at once)
               Σ cost[i] · x[i]                        ≤ budget
               Σ_{i on channel h} x[i]                 ≤ daily capacity left on h
               Σ_{i with offer o} x[i]                 ≤ volume left under offer.max_contacts

with HiGHS' branch and cut (:func:`scipy.optimize.milp`). The LP relaxation and
the branch and cut's dual bound are upper bounds on any plan, so
``(bound - plan) / bound`` with the tighter of them is a proven optimality gap.
The greedy baseline is what ranking alone would do: each customer's best action,
sent in EV order while budget and capacity last.

Campaigns are outbound: only personal channels are planned, and customers of
the experiment's control arm are held out (reported, never planned).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import LinearConstraint, linprog, milp

from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.selection import fits_capacity
from nextbest.decisioning.history import ContactHistory
from nextbest.errors import BadInputError, NextbestError

#: Columns of a plan file.
PLAN_COLUMNS: tuple[str, ...] = (
    "customer_id", "offer_id", "channel", "expected_value", "propensity", "probability", "uplift", "cost",
    "arm", "experiment",
)


@dataclass(frozen=True)
class CampaignPlan:
    """A solved plan and how good it is.

    Attributes
    ----------
    plan
        One row per planned contact (:data:`PLAN_COLUMNS`).
    value
        Total expected (incremental) value of the plan.
    cost
        Total contact cost.
    lp_bound
        Optimum of the LP relaxation (no plan can beat it).
    gap
        ``(bound - value) / bound``: proven distance from optimal. ``bound`` is the tighter
        of ``lp_bound`` and the branch and cut's dual bound: with a small budget the LP
        relaxation spends it fractionally and stays well above every integer plan.
    greedy_value, greedy_cost
        Value and cost of the greedy-ranking baseline under the same constraints.
    held_out
        Customers of the control arm, not planned.
    candidates
        Candidate (customer, offer, channel) rows with positive EV considered.
    channel_use
        Planned contacts per channel.
    """

    plan: pd.DataFrame
    value: float
    cost: float
    lp_bound: float
    gap: float
    greedy_value: float
    greedy_cost: float
    held_out: int
    candidates: int
    channel_use: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """The figures as a JSON-ready dict."""
        return {
            "contacts": len(self.plan),
            "expected_value": self.value,
            "cost": self.cost,
            "lp_bound": self.lp_bound,
            "optimality_gap": self.gap,
            "greedy_expected_value": self.greedy_value,
            "greedy_cost": self.greedy_cost,
            "value_vs_greedy": (self.value / self.greedy_value - 1.0) if self.greedy_value > 0 else None,
            "held_out_control": self.held_out,
            "candidates": self.candidates,
            "channel_use": self.channel_use,
        }


def plan_campaign(
    engine: DecisionEngine,
    features: pd.DataFrame,
    at: dt.datetime,
    budget: float,
    *,
    k: int = 1,
    history: ContactHistory | None = None,
    offer_history: pd.DataFrame | None = None,
    time_limit_s: float = 120.0,
    mip_rel_gap: float = 1e-4,
) -> CampaignPlan:
    """Plan a campaign for the customers of ``features`` at ``at``.

    Parameters
    ----------
    engine
        Decision engine (rules, scorers, config).
    features
        Customer features of the population.
    at
        Send time (day of the daily capacities).
    budget
        Total contact cost allowed (config currency).
    k
        Maximum actions per customer.
    history
        Contact history (caps, cool-downs, capacities already used today).
    offer_history
        Offer-history rows for the scorer.
    time_limit_s, mip_rel_gap
        Solver limits; the reported gap is always against the LP relaxation.

    Raises
    ------
    BadInputError
        For a negative budget or k < 1.
    NextbestError
        When the solver fails.
    """
    if budget < 0:
        raise BadInputError(f"--budget {budget}: must be >= 0")
    if k < 1:
        raise BadInputError(f"--k {k}: must be at least 1")
    config = engine.config
    history = history if history is not None else ContactHistory.empty(config)
    sc = engine.score_candidates(features, at, history=history, offer_history=offer_history)
    channels = config.channels.channels
    personal = np.array([c.personal for c in channels])
    control = ~engine.arm_contacts[sc.arm]
    keep = personal[sc.channel] & ~control[sc.cust] & (sc.expected_value > config.policy.arbitration.min_expected_value)
    rows = np.nonzero(keep)[0]
    ev, cost = sc.expected_value[rows], sc.cost[rows]
    cust, offer, channel = sc.cust[rows], sc.offer[rows], sc.channel[rows]
    n, n_ch, n_of = len(sc.ids), len(channels), len(config.offers.offers)
    policy = config.policy.contact

    # Per-customer allowances from the contact policy, already net of past contacts.
    cust_left = np.minimum(k, np.maximum(policy.max_contacts - sc.view.contacts, 0))
    per_channel_cap = np.array([policy.max_contacts_per_channel.get(c.id, np.inf) for c in channels], dtype=float)
    ch_cust_left = np.maximum(per_channel_cap[None, :] - sc.view.contacts_by_channel, 0)
    ch_left = sc.view.channel_remaining
    of_left = sc.view.offer_remaining

    blocks, upper = [], []
    m = len(rows)
    var = np.arange(m)

    def add(group: np.ndarray, bound: np.ndarray, weights: np.ndarray | None = None) -> None:
        # One row per distinct group value; only groups whose bound can bind.
        uniq, inv = np.unique(group, return_inverse=True)
        b = bound[uniq] if bound.ndim else np.full(len(uniq), float(bound))
        A = sparse.csr_matrix((np.ones(m) if weights is None else weights, (inv, var)), shape=(len(uniq), m))
        finite = np.isfinite(b)
        blocks.append(A[finite])
        upper.append(b[finite])

    if m:
        add(cust, cust_left.astype(float))
        add(cust * n_ch + channel, ch_cust_left.ravel())
        add(cust * n_of + offer, np.array(1.0))
        add(channel, ch_left)
        add(offer, of_left)
        add(np.zeros(m, dtype=np.int64), np.array([float(budget)]), weights=cost)
        A = sparse.vstack(blocks).tocsr()
        ub = np.concatenate(upper)
        constraint = LinearConstraint(A, -np.inf, ub)
        res = milp(
            -ev, integrality=np.ones(m), bounds=(0, 1), constraints=constraint,
            options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "presolve": True},
        )
        if res.x is None:
            raise NextbestError(f"campaign solver failed: {res.message}")
        x = res.x > 0.5
        lp = linprog(-ev, A_ub=A, b_ub=ub, bounds=(0, 1), method="highs")
        lp_bound = float(-lp.fun) if lp.status == 0 else float(np.sum(ev))
        dual = getattr(res, "mip_dual_bound", None)
        bound = min(lp_bound, -float(dual)) if dual is not None and np.isfinite(dual) else lp_bound
    else:
        x = np.zeros(0, dtype=bool)
        lp_bound = bound = 0.0

    value = float(ev[x].sum())
    g_value, g_cost = _greedy(ev, cost, cust, offer, channel, n, ch_left, of_left, cust_left, ch_cust_left, budget)
    chosen = rows[x]
    plan = pd.DataFrame(
        {
            "customer_id": sc.ids[sc.cust[chosen]],
            "offer_id": engine.offer_ids[sc.offer[chosen]],
            "channel": engine.channel_ids[sc.channel[chosen]],
            "expected_value": sc.expected_value[chosen],
            "propensity": 1.0,  # a plan is deterministic
            "probability": sc.probability[chosen],
            "uplift": sc.uplift[chosen],
            "cost": sc.cost[chosen],
            "arm": engine.arm_names[sc.arm[sc.cust[chosen]]],
            "experiment": config.policy.experiment.name,
        }
    ).sort_values(["customer_id", "expected_value"], ascending=[True, False], ignore_index=True)
    return CampaignPlan(
        plan=plan,
        value=value,
        cost=float(cost[x].sum()),
        lp_bound=lp_bound,
        gap=max(bound - value, 0.0) / bound if bound > 0 else 0.0,  # clamp solver round-off
        greedy_value=g_value,
        greedy_cost=g_cost,
        held_out=int(control.sum()),
        candidates=m,
        channel_use={str(c): int(v) for c, v in plan["channel"].value_counts().items()},
    )


def _greedy(
    ev: np.ndarray, cost: np.ndarray, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray, n: int,
    ch_left: np.ndarray, of_left: np.ndarray, cust_left: np.ndarray, ch_cust_left: np.ndarray, budget: float,
) -> tuple[float, float]:
    """Ranking alone: each customer's top actions (k, one per offer, channel caps),
    sent in EV order while capacities and the budget last."""
    order = np.lexsort((-ev, cust))
    c, o, h = cust[order], offer[order], channel[order]
    n_of, n_ch = int(o.max(initial=0)) + 1, ch_cust_left.shape[1]
    best_channel = _rank_within(c * n_of + o) == 0
    keep = order[best_channel]
    c, h = cust[keep], channel[keep]
    keep = keep[_rank_within(c * n_ch + h) < ch_cust_left[c, h]]
    keep = keep[_rank_within(cust[keep]) < cust_left[cust[keep]]]
    keep = keep[np.argsort(-ev[keep], kind="stable")]
    keep = keep[fits_capacity(channel[keep], ch_left) & fits_capacity(offer[keep], of_left)]
    keep = keep[np.cumsum(cost[keep]) <= budget + 1e-9]
    return float(ev[keep].sum()), float(cost[keep].sum())


def _rank_within(group: np.ndarray) -> np.ndarray:
    """Position of each row among the earlier rows of its group (rows in priority order)."""
    order = np.argsort(group, kind="stable")
    _, first, counts = np.unique(group[order], return_index=True, return_counts=True)
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - np.repeat(first, counts)
    return rank
