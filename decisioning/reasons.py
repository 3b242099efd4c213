"""Why: the reason codes of ranked actions and the rule behind each suppressed candidate.

An action's reasons are its model's contributions (``"recency_days:+0.12"``,
the top three), then the rules, triggers and exploration that applied
(``trigger:birthday``, ``forced``, ``eligibility:…``, ``segment:…``,
``stage:…``, ``explore``). Contributions cost ~0.25 ms a row, so they are
computed only for the rows returned, remembered in the prepared block's
:class:`~nextbest.decisioning.prepared.ReasonMemo` where it keeps one, and held
by the per-customer plans for the head of each action set.

A suppressed candidate carries its reason code (:data:`~nextbest.decisioning.candidates.REASONS`)
and the rule or limit that explains it (:func:`suppression_details`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from nextbest.config import NextbestConfig
from nextbest.decisioning.candidates import REASONS
from nextbest.decisioning.prepared import PreparedCustomers, ReasonMemo
from nextbest.decisioning.scoring import ScoredCandidates, offer_history_of
from nextbest.decisioning.selection import RankedActions
from nextbest.models.candidate_matrix import CandidateMatrix

if TYPE_CHECKING:
    from nextbest.decisioning.engine import DecisionEngine
    from nextbest.decisioning.plans import CustomerPlan

#: Reasons of the "no action" a customer gets when nothing is worth doing.
NO_ACTION_REASONS: tuple[str, ...] = ("no_positive_expected_value",)


def action_reasons(engine: DecisionEngine, actions: RankedActions, sc: ScoredCandidates) -> list[list[str]]:
    """Reason codes of each action: model contributions, then the rules and triggers that applied."""
    rows = actions.row
    reasons: list[list[str]] = [[] for _ in range(len(rows))]
    real = np.flatnonzero(rows >= 0)
    aliases = engine._arm_alias[sc.arm[sc.cust[rows[real]]]] if len(real) else np.array([], dtype=object)
    for alias in dict.fromkeys(aliases):
        sel = real[aliases == alias]
        matrix = engine.matrix.get(alias)
        if matrix is not None:
            picked = rows[sel]
            model_reasons = matrix_reasons(
                alias, matrix, sc.customers, sc.cust[picked], sc.offer[picked], sc.channel[picked], len(engine.offer_ids)
            )
        else:
            model_reasons = engine.scorers[alias].reasons(sc.frame.iloc[rows[sel]], top=3)
        for i, r in zip(sel, model_reasons, strict=True):
            reasons[i] = list(r)
    offer = sc.offer[rows[real]]
    trig = sc.target.trigger[sc.cust[rows[real]], offer].tolist()
    forced = sc.target.forced[sc.cust[rows[real]], offer].tolist()
    staged = (engine.offer_stage[offer] == sc.target.stage[sc.cust[rows[real]]]).tolist()
    explored = actions.explored[real].tolist()
    for k, (i, o) in enumerate(zip(real.tolist(), offer.tolist(), strict=True)):
        reasons[i].extend(rule_reasons(engine, o, trig[k], forced[k], staged[k], explored[k]))
    for i in np.flatnonzero(rows < 0).tolist():
        reasons[i] = list(NO_ACTION_REASONS)
    return reasons


def rule_reasons(engine: DecisionEngine, offer: int, trigger: int, forced: bool, staged: bool, explored: bool) -> list[str]:
    """The rules, triggers and exploration behind an action on ``offer`` (after its model reasons)."""
    o = engine.config.offers.offers[offer]
    out = []
    if trigger >= 0:
        out.append(f"trigger:{engine._trigger_ids[trigger]}")
    if forced:
        out.append("forced")
    if o.eligibility:
        out.append(f"eligibility:{o.eligibility}")
    if o.segment:
        out.append(f"segment:{o.segment}")
    if staged and engine.config.policy.stages.mode == "boost":
        out.append(f"stage:{o.stage}")
    if explored:
        out.append("explore")
    return out


def matrix_reasons(
    alias: str, matrix: CandidateMatrix, customers: PreparedCustomers, c: np.ndarray, o: np.ndarray, ch: np.ndarray,
    n_offers: int,
) -> list[list[str]] | list[tuple[str, ...]]:
    """Model reason codes of candidate rows ``(c, o, ch)`` of ``customers``, from their memo where it has them."""

    def compute(rows: np.ndarray) -> list[list[str]]:
        cr, orow = c[rows], o[rows]
        return matrix.reasons(customers.encoded(alias), cr, orow, ch[rows], offer_history_of(customers, cr, orow, n_offers), top=3)

    memo, origin = customers.memo, customers.origin
    if memo is None or origin is None:
        return compute(np.arange(len(c)))
    return remembered(memo, alias, origin[c], o, ch, compute)


def head_reasons(engine: DecisionEngine, sc: ScoredCandidates, rows: np.ndarray) -> list[tuple[str, ...]]:
    """Model reason codes of candidate rows ``rows`` of ``sc``, one booster call per model."""
    out: list[tuple[str, ...]] = [()] * len(rows)
    aliases = engine._arm_alias[sc.arm[sc.cust[rows]]]
    for alias in dict.fromkeys(aliases.tolist()):
        sel = np.flatnonzero(aliases == alias)
        c, o = sc.cust[rows[sel]], sc.offer[rows[sel]]
        found = engine.matrix[alias].reasons(
            sc.customers.encoded(alias), c, o, sc.channel[rows[sel]],
            offer_history_of(sc.customers, c, o, len(engine.offer_ids)), top=3,
        )
        for i, r in zip(sel.tolist(), found, strict=True):
            # Few distinct codes ("recency_days:+0.12"), held by every plan: one string each.
            out[i] = tuple(sys.intern(code) for code in r)
    return out


def planned_reasons(
    engine: DecisionEngine, alias: str, plan: CustomerPlan, customers: PreparedCustomers, rows: np.ndarray,
    o: np.ndarray, ch: np.ndarray,
) -> list[tuple[str, ...]] | list[list[str]]:
    """Model reason codes of the plan's rows ``rows`` (pairs ``(o, ch)``): the plan's own, else the memo's.

    Counts those the plan held in ``engine.reasons_from_plans``.
    """
    found: list[tuple[str, ...] | list[str]] = [plan.reasons[r] if r < len(plan.reasons) else () for r in rows.tolist()]
    rest = np.flatnonzero(rows >= len(plan.reasons))
    engine.reasons_from_plans += len(rows) - len(rest)
    if not len(rest):
        return found  # type: ignore[return-value]
    matrix = engine.matrix[alias]
    o, ch = o[rest], ch[rest]
    n_offers = len(engine.offer_ids)

    # The plan's scores are at the contact pressure it holds; the block's rows (and memo) at the snapshot's.
    held = customers.pressure
    moved = {c: np.array([v]) for c, v in plan.pressure if c in held and held[c][plan.origin] != v}
    if plan.cold_start:
        moved = {}

    def compute(picked: np.ndarray) -> list[list[str]]:
        # Only the customer's own row: a look-up in the whole block costs as much as the block is large.
        one = customers.take(np.array([plan.origin]))
        one = one.with_pressure(moved) if moved else one
        zero = np.zeros(len(picked), dtype=np.int64)
        om = o[picked]
        return matrix.reasons(one.encoded(alias), zero, om, ch[picked], offer_history_of(one, zero, om, n_offers), top=3)

    if customers.memo is None or moved:
        others: list[tuple[str, ...]] | list[list[str]] = compute(np.arange(len(o)))
    else:
        others = remembered(customers.memo, alias, np.full(len(o), plan.origin), o, ch, compute)
    for i, r in zip(rest.tolist(), others, strict=True):
        found[i] = r
    return found  # type: ignore[return-value]


def remembered(
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


def suppressed_pairs(sc: ScoredCandidates, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(customer position, offer, channel, reason code)`` of every removed pair, customer-major.

    ``removed`` is the suppression code of each candidate row lost to capacity (0: kept).
    """
    codes = sc.codes.copy()
    lost = np.flatnonzero(removed)
    codes[sc.cust[lost], sc.pair[lost]] = removed[lost]
    c, p = np.nonzero(codes > 0)
    return c, sc.grid.offer[p], sc.grid.channel[p], codes[c, p].astype(np.int64)


def suppression_details(config: NextbestConfig) -> np.ndarray:
    """(reason, offer, channel) -> the rule or limit that explains a suppression."""
    policy = config.policy
    offers, channels = config.offers.offers, config.channels.channels

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
    return np.array(
        [[[detail(k, oi, ci) if k else "" for ci in range(len(channels))] for oi in range(len(offers))] for k in range(len(REASONS))],
        dtype=object,
    )
