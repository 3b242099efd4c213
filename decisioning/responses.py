"""Step 6 of a decision: what a decided batch returns.

A batch is decided as arrays (:class:`DecidedBatch`);
:meth:`DecisionEngine.decide <nextbest.decisioning.engine.DecisionEngine.decide>`
presents it as frames (:func:`decision_frames`: one ``decisions`` row per
customer, the ranked actions, the suppressed candidates) and
:meth:`DecisionEngine.rank <nextbest.decisioning.engine.DecisionEngine.rank>` as
one :class:`~nextbest.decisioning.documents.RankResponse` per customer
(:func:`rank_documents`), whose actions carry the filled message.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nextbest.decisioning.candidates import REASONS
from nextbest.decisioning.documents import Action, Personalisation, RankResponse, Suppressed
from nextbest.decisioning.scoring import ScoredCandidates
from nextbest.decisioning.selection import Groups, RankedActions

if TYPE_CHECKING:
    from nextbest.decisioning.engine import DecisionEngine


@dataclass(frozen=True)
class Decisions:
    """What :meth:`DecisionEngine.decide <nextbest.decisioning.engine.DecisionEngine.decide>` returns for a batch.

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
class DecidedBatch:
    """What a batch decided, as arrays; :func:`decision_frames` and :func:`rank_documents` present it."""

    sc: ScoredCandidates
    decision_ids: np.ndarray
    chosen: np.ndarray  # (n,) candidate row of the decision, -1 = none
    prop: np.ndarray  # (R,) selection probability of each candidate row
    contacted: np.ndarray  # (n,)
    actions: RankedActions
    reasons: list[list[str]] | None  # per action, when explained
    suppressed: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None  # customer, offer, channel, code
    p_none: np.ndarray | None = None  # (n,) probability of "no action" (None: 1 wherever there is no choice)


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


class ProfileLookup:
    """``first_name`` and ``gender`` of customers, for the salutation, from a ``profiles`` frame indexed once."""

    def __init__(self) -> None:
        self._cached: tuple[pd.DataFrame, pd.Index, np.ndarray | None, np.ndarray | None] | None = None

    def columns(self, profiles: pd.DataFrame | None, ids: np.ndarray) -> tuple[list[object], list[object]]:
        """``first_name`` and ``gender`` of ``ids`` (``None`` when unknown)."""
        if profiles is None:
            return [None] * len(ids), [None] * len(ids)
        cached = self._cached
        # The service passes the same (immutable) profiles frame with every request: index it once.
        if cached is None or cached[0] is not profiles:
            unique = profiles.drop_duplicates("customer_id").sort_values("customer_id", kind="stable")
            index = pd.Index(unique["customer_id"].to_numpy(dtype=np.int64))
            first = unique["first_name"].to_numpy(dtype=object) if "first_name" in unique.columns else None
            gender = unique["gender"].to_numpy(dtype=object) if "gender" in unique.columns else None
            cached = self._cached = (profiles, index, first, gender)
        _, index, first, gender = cached
        pos = _positions_in(index, ids)
        return pick(first, pos, None).tolist(), pick(gender, pos, None).tolist()


def pick(values: np.ndarray | None, rows: np.ndarray, fill: object) -> np.ndarray:
    """``values[rows]`` with ``fill`` where ``rows`` is -1 (``values`` may be empty or ``None``)."""
    rows = np.asarray(rows, dtype=np.int64)
    if values is None or len(values) == 0:
        return np.full(len(rows), fill, dtype=object if fill is None else None)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], fill)


def _positions_in(index: pd.Index, ids: np.ndarray) -> np.ndarray:
    """``index.get_indexer(ids)`` (-1 = absent), by binary search when the index is sorted and unique."""
    values = index.to_numpy()
    if len(values) == 0 or not (index.is_monotonic_increasing and index.is_unique):
        return index.get_indexer(ids)
    at = np.minimum(np.searchsorted(values, ids), len(values) - 1)
    return np.where(values[at] == ids, at, -1)


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def action_columns(
    engine: DecisionEngine, sc: ScoredCandidates, actions: RankedActions, order: np.ndarray, prop: np.ndarray,
    p_none: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The action table's columns, rows in ``order`` (``actions`` frame of :class:`Decisions`);
    ``p_none`` is each customer's probability of "no action" (``None``: 1)."""
    rows = actions.row[order]
    c = actions.cust[order]
    real = rows >= 0
    propensity = pick(prop, rows, 1.0)
    if p_none is not None:
        propensity = np.where(real, propensity, p_none[c])
    offer = pick(sc.offer, rows, 0).astype(np.int64)
    channel = pick(sc.channel, rows, 0).astype(np.int64)
    offer_row = sc.offer[np.maximum(rows, 0)] if len(sc.offer) else offer
    trigger = np.where(real, sc.target.trigger[c, offer], -1) if len(c) else np.zeros(0, dtype=np.int64)
    return {
        "customer_id": sc.ids[c],
        "rank": actions.rank[order],
        "offer_id": np.where(real, engine.offer_ids[offer], None),
        "channel": np.where(real, engine.channel_ids[channel], None),
        "probability": pick(sc.probability, rows, np.nan),
        "uplift": pick(sc.uplift, rows, np.nan),
        "value": np.where(real, engine.offer_value[offer], 0.0),
        "lever": np.where(real, engine.offer_lever[offer], 0.0),
        "boost": pick(sc.boost, rows, 1.0),
        "cost": np.where(real, engine.channel_cost[channel], 0.0),
        "expected_value": pick(sc.expected_value, rows, 0.0),
        "propensity": propensity,
        "trigger": engine._trigger_ids[trigger],
        "forced": real & sc.target.forced[c, offer_row] if len(c) else np.zeros(0, dtype=bool),
        "explored": actions.explored[order],
        "row": rows,
    }


def decision_frames(engine: DecisionEngine, b: DecidedBatch, details: np.ndarray | None) -> Decisions:
    """The batch ``b`` as frames; ``details`` is the suppression details table
    (:func:`~nextbest.decisioning.reasons.suppression_details`) when explained, else ``None``."""
    sc, a = b.sc, b.actions
    n = len(sc.ids)
    has = b.chosen >= 0
    propensity = pick(b.prop, b.chosen, 1.0)
    if b.p_none is not None:  # "no action" has its own probability where the customer explored it
        propensity = np.where(has, propensity, b.p_none)
    decisions = pd.DataFrame(
        {
            "decision_id": b.decision_ids,
            "customer_id": sc.ids,
            "ts": pd.Timestamp(sc.at).as_unit("us"),
            "offer_id": np.where(has, pick(engine.offer_ids[sc.offer], b.chosen, None), None),
            "channel": np.where(has, pick(engine.channel_ids[sc.channel], b.chosen, None), None),
            "arm": engine.arm_names[sc.arm],
            "experiment": engine.config.policy.experiment.name,
            "propensity": propensity,
            "model_version": engine._arm_version[sc.arm] if n else np.array([], dtype=object),
            "score": pick(sc.expected_value, b.chosen, 0.0),
            "contacted": b.contacted,
            "cold_start": sc.cold_start,
        }
    )
    # Customer id, then rank: the order callers read actions in.
    order = np.lexsort((a.rank, sc.ids[a.cust]))
    columns = action_columns(engine, sc, a, order, b.prop, b.p_none)
    if (a.row < 0).any():  # text columns holding "no action" nulls stay object, not str
        columns |= {c: pd.Series(columns[c], dtype=object) for c in ("offer_id", "channel", "trigger")}
    actions = pd.DataFrame({"decision_id": b.decision_ids[a.cust[order]], **columns})
    suppressed = None
    if details is not None:
        actions = actions.assign(reasons=[b.reasons[i] for i in order])  # type: ignore[index]
        c, o, ch, code = b.suppressed  # type: ignore[misc]
        suppressed = pd.DataFrame(
            {
                "customer_id": sc.ids[c],
                "offer_id": engine.offer_ids[o],
                "channel": engine.channel_ids[ch],
                "reason": np.array(REASONS, dtype=object)[code],
                "detail": details[code, o, ch],
            }
        )
    return Decisions(decisions, actions, suppressed, len(sc.cust))


def action_document(
    engine: DecisionEngine, rank: int, offer: int, channel: int, probability: float, uplift: float, boost: float,
    expected_value: float, propensity: float, reasons: list[str], trigger: object, greet: str, liked: object,
) -> Action:
    """One ranked action; ``offer`` -1 is "no action" (then ``channel`` is -1 too).

    Built from already validated values: ``model_construct`` skips re-validation.
    """
    personal = None
    if offer >= 0:
        # 'none' is the feature's value for "no recent interest".
        category = liked if isinstance(liked, str) and liked not in ("", "none") else engine._offer_category[offer]
        personal = Personalisation.model_construct(
            salutation=greet, category=category, trigger=trigger if isinstance(trigger, str) else None,
            message=fill_message(engine._offer_message[offer], {"salutation": greet, "category": category}),
        )
    real = offer >= 0
    return Action.model_construct(
        rank=rank, offer_id=engine._offer_list[offer] if real else None,
        channel=engine._channel_list[channel] if real else None,
        probability=_num(probability), uplift=_num(uplift), value=engine._value_list[offer] if real else 0.0,
        lever=engine._lever_list[offer] if real else 0.0, boost=boost, cost=engine._cost_list[channel] if real else 0.0,
        expected_value=expected_value, propensity=min(max(propensity, 0.0), 1.0), reasons=reasons,
        personalisation=personal,
    )


def rank_documents(
    engine: DecisionEngine, b: DecidedBatch, names: tuple[list[object], list[object]], details: np.ndarray | None,
    explain: bool,
) -> list[RankResponse]:
    """The batch ``b`` as one document per customer, in batch order.

    Parameters
    ----------
    engine
        The engine that decided (offer and channel terms, arms, messages).
    b
        The decided batch.
    names
        ``first_name`` and ``gender`` of each customer (:meth:`ProfileLookup.columns`).
    details
        The suppression details table when ``b`` lists suppressed candidates, else ``None``.
    explain
        Include the actions' reasons.
    """
    sc, a = b.sc, b.actions
    n = len(sc.ids)
    first, gender = names
    interest = sc.customers.interest.tolist()
    order = np.lexsort((a.rank, a.cust))  # customer position, then rank
    cols = {k: v.tolist() for k, v in action_columns(engine, sc, a, order, b.prop, b.p_none).items()}
    offer_pos = pick(sc.offer, a.row[order], -1).tolist()
    channel_pos = pick(sc.channel, a.row[order], -1).tolist()
    reasons = [b.reasons[i] for i in order.tolist()] if explain and b.reasons is not None else None
    per_customer = Groups.of(a.cust[order], n)
    sup_start = sup_count = None
    if b.suppressed is not None and details is not None:
        c, o, ch, code = b.suppressed
        sup = Groups.of(c, n)
        sup_start, sup_count = sup.start.tolist(), sup.count.tolist()
        sup_offer = engine.offer_ids[o].tolist()
        sup_channel = engine.channel_ids[ch].tolist()
        sup_reason = np.array(REASONS, dtype=object)[code].tolist()
        sup_detail = details[code, o, ch].tolist()
    docs = []
    starts, counts = per_customer.start.tolist(), per_customer.count.tolist()
    ids, arms, contacted, cold = sc.ids.tolist(), sc.arm.tolist(), b.contacted.tolist(), sc.cold_start.tolist()
    experiment = engine.config.policy.experiment.name
    # Documents from already validated values: model_construct skips re-validation.
    for i in range(n):
        greet = salutation(first[i], gender[i])
        actions = [
            action_document(
                engine, cols["rank"][j], offer_pos[j], channel_pos[j], cols["probability"][j], cols["uplift"][j],
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
                decision_id=b.decision_ids[i], customer_id=ids[i], at=sc.at, model_version=engine._arm_version[arms[i]],
                experiment=experiment, arm=engine.arm_names[arms[i]], contacted=contacted[i], cold_start=cold[i],
                actions=actions, suppressed=suppressed,
            )
        )
    return docs
