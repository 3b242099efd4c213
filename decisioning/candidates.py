"""Candidate actions and the rules that remove them, as dense (customer × pair) arrays.

A *pair* is an (offer, channel) the catalogue allows at the decision day; every
customer of a batch starts with every pair. :func:`suppression_codes` returns, for
each customer and pair, ``0`` when the pair survives or the code of the first rule
that removes it, in the order of :data:`REASONS` (legal constraints first, then
targeting, then contact policy). Everything is computed per customer or per
offer and broadcast: no Python loop over customers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.decisioning.documents import Context
from nextbest.decisioning.history import HistoryView
from nextbest.decisioning.rules import RuleFrame
from nextbest.decisioning.ruleset import RuleSet
from nextbest.errors import BadInputError
from nextbest.models.encoding import Levels

#: Suppression reason codes; the index is the code, 0 = not suppressed.
REASONS: tuple[str, ...] = (
    "",
    "no_consent",
    "unreachable",
    "eligibility",
    "segment",
    "stage_gate",
    "channel_stage",
    "complaint",
    "negative_response",
    "contact_cap",
    "channel_cap",
    "offer_cooldown",
    "offer_cap",
    "channel_capacity",
)
CODE: dict[str, int] = {name: i for i, name in enumerate(REASONS) if name}

_STAGES = Levels.of(JOURNEY_STAGES)


@dataclass(frozen=True)
class PairGrid:
    """The (offer, channel) pairs that are candidates at a day.

    Attributes
    ----------
    offer
        Offer index (config order) of each pair.
    channel
        Channel index (config order) of each pair.
    """

    offer: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return len(self.offer)

    @classmethod
    def build(cls, config: NextbestConfig, day: dt.date | None, channel: str | None = None) -> PairGrid:
        """Offers valid on ``day`` (every offer when ``None``) × their channels (only ``channel`` when given).

        Raises
        ------
        BadInputError
            When ``channel`` is not a configured channel.
        """
        channel_ids = [c.id for c in config.channels.channels]
        if channel is not None and channel not in channel_ids:
            raise BadInputError(f"context channel {channel!r} is not configured; use one of {channel_ids}")
        offers, channels = [], []
        for i, offer in enumerate(config.offers.offers):
            if day is not None and not offer.valid_at(day):
                continue
            for ch in offer.channels:
                if channel is None or ch == channel:
                    offers.append(i)
                    channels.append(channel_ids.index(ch))
        return cls(np.array(offers, dtype=np.int64), np.array(channels, dtype=np.int64))


def truthy(features: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` as booleans where null (unknown) is false.

    Raises
    ------
    BadInputError
        When the feature frame lacks the column.
    """
    if column not in features.columns:
        raise BadInputError(
            f"feature frame has no column {column!r}; the decision engine needs it (rebuild features)"
        )
    s = features[column]
    if pd.api.types.is_bool_dtype(s.dtype) and not isinstance(s.dtype, pd.BooleanDtype):
        return s.to_numpy(dtype=bool, copy=True)
    return s.astype("boolean").fillna(False).to_numpy(dtype=bool)


def stage_index(features: pd.DataFrame) -> np.ndarray:
    """Journey stage of each customer as 0..3; unknown counts as awareness (0)."""
    if "journey_stage" not in features.columns:
        raise BadInputError("feature frame has no column 'journey_stage'; the decision engine needs it")
    codes = _STAGES.codes_of(features["journey_stage"])
    return np.where(codes < 0, 0, codes).astype(np.int64)


@dataclass(frozen=True)
class Targeting:
    """Per-customer facts derived from features, shared by all pairs.

    Attributes
    ----------
    eligible
        (n, O) offer eligibility and segment membership combined.
    reason
        (n, O) code of the offer-level rule that failed (eligibility / segment), else 0.
    consent, reachable
        (n, C) per channel; always true for non-personal channels.
    stage
        (n,) journey stage index.
    boost
        (n, O) trigger multiplier on the gain (1 = none).
    forced
        (n, O) a ``force`` trigger fired for the offer.
    trigger
        (n, O) index of the trigger that fired for the offer (-1 = none).
    """

    eligible: np.ndarray
    reason: np.ndarray
    consent: np.ndarray
    reachable: np.ndarray
    stage: np.ndarray
    boost: np.ndarray
    forced: np.ndarray
    trigger: np.ndarray


@dataclass(frozen=True)
class CustomerFacts:
    """What targeting reads from a customer's features, before the request's context is known.

    Everything here depends on the feature rows alone, so the scoring service
    computes it once per feature snapshot and takes rows per request;
    :meth:`targeting` adds the triggers, which depend on the context's event.

    Attributes
    ----------
    eligible, reason, consent, reachable, stage
        As in :class:`Targeting`.
    event
        Per trigger: (n,) whether its event feature is true, or the error that
        reading the (missing) column raised, re-raised only when the trigger
        needs the column (a context naming the event fires it without it).
    condition
        Per trigger: (n,) whether its condition holds, ``None`` without one.
    """

    eligible: np.ndarray
    reason: np.ndarray
    consent: np.ndarray
    reachable: np.ndarray
    stage: np.ndarray
    event: tuple[np.ndarray | BadInputError, ...]
    condition: tuple[np.ndarray | None, ...]

    def __len__(self) -> int:
        return len(self.stage)

    def take(self, positions: np.ndarray) -> CustomerFacts:
        """The facts of the customers at ``positions`` (repeats allowed)."""
        return CustomerFacts(
            self.eligible[positions], self.reason[positions], self.consent[positions], self.reachable[positions],
            self.stage[positions],
            tuple(e if isinstance(e, BadInputError) else e[positions] for e in self.event),
            tuple(c if c is None else c[positions] for c in self.condition),
        )

    @classmethod
    def concat(cls, parts: list[CustomerFacts]) -> CustomerFacts:
        """The customers of ``parts`` one after the other."""
        def events(i: int) -> np.ndarray | BadInputError:
            column = [p.event[i] for p in parts]
            missing = next((e for e in column if isinstance(e, BadInputError)), None)
            return missing if missing is not None else np.concatenate(column)  # type: ignore[arg-type]

        first = parts[0]
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("eligible", "reason", "consent", "reachable", "stage")),
            tuple(events(i) for i in range(len(first.event))),
            tuple(None if first.condition[i] is None else np.concatenate([p.condition[i] for p in parts])  # type: ignore[misc]
                  for i in range(len(first.condition))),
        )

    def targeting(self, config: NextbestConfig, context: Context, cooling: np.ndarray | None = None) -> Targeting:
        """The facts with the triggers of ``context`` applied.

        ``cooling`` (n, T) says which triggers are within their re-fire cool-down for
        each customer (:attr:`HistoryView.trigger_cooling`): those do not fire, whatever
        the event or the context says. ``None``: none is.
        """
        n = len(self.stage)
        offers = config.offers.offers
        offer_pos = {o.id: j for j, o in enumerate(offers)}
        boost = np.ones((n, len(offers)))
        forced = np.zeros((n, len(offers)), dtype=bool)
        trigger = np.full((n, len(offers)), -1, dtype=np.int64)
        for t_idx, t in enumerate(config.policy.triggers):
            if context.event == t.event:
                fired = np.ones(n, dtype=bool)
            else:
                event = self.event[t_idx]
                if isinstance(event, BadInputError):
                    raise event
                fired = event.copy()
            condition = self.condition[t_idx]
            if condition is not None:
                fired &= condition
            if cooling is not None:
                fired &= ~cooling[:, t_idx]
            for offer_id in t.offers:
                j = offer_pos[offer_id]
                if t.action == "force":
                    take = fired & ~forced[:, j]
                    forced[:, j] |= fired
                else:
                    take = fired & ~forced[:, j] & (t.boost > boost[:, j])
                    boost[:, j] = np.where(take, t.boost, boost[:, j])
                trigger[take, j] = t_idx
        return Targeting(self.eligible, self.reason, self.consent, self.reachable, self.stage, boost, forced, trigger)


def customer_facts(features: pd.DataFrame, config: NextbestConfig, rules: RuleSet) -> CustomerFacts:
    """Evaluate eligibility, segments, consent, reachability, stage and the trigger inputs."""
    n = len(features)
    offers = config.offers.offers
    frame = RuleFrame(features)  # each feature column is converted once for all rules
    segment_hits = {name: rule.evaluate(frame) for name, rule in rules.segments.items()}
    eligible = np.ones((n, len(offers)), dtype=bool)
    reason = np.zeros((n, len(offers)), dtype=np.int8)
    for j, offer in enumerate(offers):
        rule = rules.eligibility[offer.id]
        if rule is not None:
            ok = rule.evaluate(frame)
            reason[~ok, j] = CODE["eligibility"]
            eligible[:, j] = ok
        if offer.segment is not None:
            member = segment_hits[offer.segment]
            reason[eligible[:, j] & ~member, j] = CODE["segment"]
            eligible[:, j] &= member

    channels = config.channels.channels
    consent = np.ones((n, len(channels)), dtype=bool)
    reachable = np.ones((n, len(channels)), dtype=bool)
    for k, ch in enumerate(channels):
        if ch.personal:
            consent[:, k] = truthy(features, f"consent_{ch.id}")
            reachable[:, k] = truthy(features, f"reachable_{ch.id}") & consent[:, k]

    events: list[np.ndarray | BadInputError] = []
    conditions: list[np.ndarray | None] = []
    for t in config.policy.triggers:
        try:
            events.append(truthy(features, t.event))
        except BadInputError as exc:
            events.append(exc)
        condition = rules.conditions[t.id]
        conditions.append(condition.evaluate(frame) if condition is not None else None)
    return CustomerFacts(eligible, reason, consent, reachable, stage_index(features), tuple(events), tuple(conditions))


def targeting(
    features: pd.DataFrame, config: NextbestConfig, rules: RuleSet, context: Context, cooling: np.ndarray | None = None
) -> Targeting:
    """Evaluate eligibility, segments, consent, reachability, stage and triggers (``cooling`` as for
    :meth:`CustomerFacts.targeting`)."""
    return customer_facts(features, config, rules).targeting(config, context, cooling)


@dataclass(frozen=True)
class PolicyArrays:
    """The configuration's per-offer and per-channel facts :func:`suppression_codes` compares against."""

    offer_stage: np.ndarray  # (O,) journey stage index of each offer
    min_stage: np.ndarray  # (C,) least journey stage a channel needs
    personal: np.ndarray  # (C,) channel addresses a person
    per_channel: np.ndarray  # (C,) contacts allowed per channel in the window

    @classmethod
    def of(cls, config: NextbestConfig) -> PolicyArrays:
        policy = config.policy
        channels = config.channels.channels
        return cls(
            offer_stage=np.array([JOURNEY_STAGES.index(x.stage) for x in config.offers.offers]),
            min_stage=np.array(
                [JOURNEY_STAGES.index(policy.stages.min_stage_for_channel[ch.id]) if ch.id in policy.stages.min_stage_for_channel else 0
                 for ch in channels]
            ),
            personal=np.array([ch.personal for ch in channels]),
            per_channel=np.array([policy.contact.max_contacts_per_channel.get(ch.id, np.iinfo(np.int64).max) for ch in channels]),
        )


def suppression_codes(
    config: NextbestConfig, grid: PairGrid, target: Targeting, view: HistoryView, arrays: PolicyArrays | None = None
) -> np.ndarray:
    """(n, P) int8: 0 where the pair is a candidate, else the first failing rule's code.

    The order of checks is the order of :data:`REASONS`, so the explanation of a
    suppressed pair is the most fundamental one (no consent before a full cap).
    ``arrays`` are ``PolicyArrays.of(config)``, passed by callers that decide often.
    """
    arrays = arrays if arrays is not None else PolicyArrays.of(config)
    return contact_codes(rule_codes(config, grid, target, arrays), config, grid, view, arrays)


def _apply(codes: np.ndarray, fail: np.ndarray, code: int) -> None:
    """Give ``code`` to the pairs that ``fail`` and no earlier rule removed."""
    np.copyto(codes, np.int8(code), where=fail & (codes == 0))


def rule_codes(config: NextbestConfig, grid: PairGrid, target: Targeting, arrays: PolicyArrays) -> np.ndarray:
    """(n, P) int8 codes of the rules that read the customer's features alone (consent to channel stage).

    They hold for as long as the feature snapshot does: the scoring service
    applies them once per customer and day (see :mod:`~nextbest.decisioning.plans`).
    """
    n = len(target.stage)
    o, c = grid.offer, grid.channel
    codes = np.zeros((n, len(grid)), dtype=np.int8)
    _apply(codes, ~target.consent[:, c], CODE["no_consent"])
    _apply(codes, ~target.reachable[:, c], CODE["unreachable"])
    offer_reason = target.reason[:, o]
    np.copyto(codes, offer_reason, where=(codes == 0) & (offer_reason > 0))

    offer_stage = arrays.offer_stage[o]
    stage = target.stage[:, None]
    if config.policy.stages.mode == "gate":
        _apply(codes, offer_stage[None, :] > stage + 1, CODE["stage_gate"])
    min_stage = arrays.min_stage[c]
    _apply(codes, stage < min_stage[None, :], CODE["channel_stage"])
    return codes


def contact_codes(
    codes: np.ndarray, config: NextbestConfig, grid: PairGrid, view: HistoryView, arrays: PolicyArrays
) -> np.ndarray:
    """``codes`` (changed in place and returned) with the contact policy applied where still 0.

    The contact policy (complaints, unsubscribes, caps, cool-downs, capacities)
    reads the contact history, which every contacted decision changes.
    """
    for fail, code in _contact_failures(config, grid, view, arrays):
        _apply(codes, fail, code)
    return codes


def contact_blocked(config: NextbestConfig, grid: PairGrid, view: HistoryView, arrays: PolicyArrays) -> np.ndarray:
    """(n, P) whether the contact policy removes each pair: :func:`contact_codes` > 0, without the codes."""
    failures = iter(_contact_failures(config, grid, view, arrays))
    blocked = next(failures)[0]
    for fail, _ in failures:
        blocked = blocked | fail
    return np.broadcast_to(blocked, (len(view.contacts), len(grid)))


def _contact_failures(
    config: NextbestConfig, grid: PairGrid, view: HistoryView, arrays: PolicyArrays
) -> list[tuple[np.ndarray, int]]:
    """Each contact-policy rule's failing pairs (broadcastable to (n, P)) and its code, in :data:`REASONS` order."""
    o, c = grid.offer, grid.channel
    personal = arrays.personal[c][None, :]
    contact = config.policy.contact
    return [
        (personal & view.complaint[:, None], CODE["complaint"]),
        (personal & view.negative[:, None], CODE["negative_response"]),
        (personal & (view.contacts[:, None] >= contact.max_contacts), CODE["contact_cap"]),
        (personal & (view.contacts_by_channel >= arrays.per_channel[None, :])[:, c], CODE["channel_cap"]),
        (personal & view.cooling[:, o], CODE["offer_cooldown"]),
        ((view.offer_remaining[o] <= 0)[None, :], CODE["offer_cap"]),
        ((view.channel_remaining[c] <= 0)[None, :], CODE["channel_capacity"]),
    ]
