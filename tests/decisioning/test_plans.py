"""Planned ranking (the service's per-customer path) gives exactly the documents of ``DecisionEngine.rank``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.documents import Context
from nextbest.decisioning.engine import DecisionEngine, complete_features
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning import plans as plans_module
from nextbest.decisioning.plans import PlanCache
from nextbest.decisioning.prepared import PreparedCustomers
from nextbest.decisioning.synthetic import random_features

from tests.decisioning.decisioning_helpers import fitted_scorer, uncontacted, with_policy
from tests.decisioning.test_matrix_scoring import context_scorer, offer_history

AT = dt.datetime(2024, 6, 3, 9, 0)
UNKNOWN = 10**9
ARMS = {
    "name": "plans",
    "arms": [
        {"name": "champion", "share": 0.4, "policy": "model", "model_alias": "champion"},
        {"name": "rules", "share": 0.2, "policy": "rules"},
        {"name": "random", "share": 0.2, "policy": "random"},
        {"name": "control", "share": 0.2, "policy": "control"},
    ],
}
#: Policy changes, and whether the customers get enough personal contacts for caps to bite.
VARIANTS = [
    ({}, True),
    ({"exploration": {"method": "softmax", "top_n": 3}, "stages": {"mode": "boost"}}, True),
    ({"exploration": {"method": "none"}}, False),
    ({"contact": {"max_contacts": 3, "offer_cooldown_days": 30}, "arbitration": {"min_expected_value": 0.2}}, True),
    # Contact versus no action explored both ways: above the threshold (held out) and below it (sent).
    # Too few contacts for a cap to bite in 160 requests (live pressure lowers the uplift of the contacted);
    # the variants above show caps acting, test_selection.py that exploration never breaks them.
    ({"exploration": {"contact_epsilon": 0.3}, "arbitration": {"min_expected_value": 0.05}}, False),
]
CAPS = {"contact_cap", "channel_cap", "offer_cooldown", "channel_capacity"}


def with_capacity(config: NextbestConfig, **capacities: int) -> NextbestConfig:
    """``config`` with small daily capacities, so capacity suppressions happen within a test,
    and offers that end or start after the first day (a plan serves every day)."""
    raw = config.model_dump()
    for channel in raw["channels"]["channels"]:
        if channel["id"] in capacities:
            channel["daily_capacity"] = capacities[channel["id"]]
    offers = raw["offers"]["offers"]
    for offer in offers[::4]:
        offer["valid_to"] = AT.date()
    for offer in offers[1::4]:
        offer["valid_from"] = AT.date() + dt.timedelta(days=1)
    return NextbestConfig.model_validate(raw)


def snapshot(engine: DecisionEngine, features: pd.DataFrame, oh: pd.DataFrame) -> PreparedCustomers:
    """The service's block: every customer prepared, then the all-null row unknown ids get; reasons remembered."""
    blank = complete_features(features.iloc[:0], np.array([-1]), list(features.columns[1:]))
    parts = [engine.prepare(features, oh).encode_all(), engine.prepare(blank, oh.iloc[:0]).encode_all()]
    columns = list(features.columns[1:])
    return PreparedCustomers.concat(parts, frame_of=lambda ids: complete_features(features, ids, columns)).remember_reasons(500)


def profiles_of(features: pd.DataFrame) -> pd.DataFrame:
    ids = features["customer_id"].to_numpy()
    names = np.where(np.arange(len(ids)) % 3 == 0, None, "Anna")
    return pd.DataFrame({"customer_id": ids, "first_name": names, "gender": np.where(np.arange(len(ids)) % 2, "f", "m")})


@pytest.mark.parametrize(
    ("variant", "capped"), VARIANTS, ids=["epsilon", "softmax-boost", "greedy", "caps-min-ev", "contact-epsilon"]
)
def test_planned_ranking_equals_rank_as_the_history_fills(variant: dict, capped: bool) -> None:
    """Requests one at a time for few customers, so caps, cool-downs, complaints and capacities bite."""
    config = with_capacity(with_policy(load_config(), experiment=ARMS, **variant), sms=4, email=25)
    engine = DecisionEngine(config, {"champion": context_scorer()})
    assert engine.plannable
    features = uncontacted(config, random_features(config, 30, seed=8), slice(0, None, 2))
    oh = offer_history(config, features["customer_id"].to_numpy(), 8)
    block = snapshot(engine, features, oh)
    profiles = profiles_of(features)
    reference, planned = ContactHistory.empty(config), ContactHistory.empty(config)
    plans = PlanCache(1000)
    rng = np.random.default_rng(1)
    suppressed: set[str] = set()
    for step in range(160):
        pos = int(rng.integers(0, len(features) + 1))
        cid = UNKNOWN if pos == len(features) else int(features["customer_id"].iloc[pos])
        at = AT + dt.timedelta(hours=int(rng.integers(0, 30)))
        context = Context() if step % 4 else Context(channel="web", event="newsletter_signup_recent")
        top_k = int(rng.integers(1, 6))
        if step % 37 == 5:  # a complaint or unsubscribe arrives
            for history in (reference, planned):
                history.record_negative(np.array([cid]), at, "complaint" if step % 2 else "unsubscribe")
        customers = block.take(np.array([pos]), ids=np.array([cid]))
        want = engine.rank(customers, at, context, top_k, step, history=reference, profiles=profiles, suppressed=True)[0]
        key = (cid, context.channel, context.event)
        plan = plans.get(key)
        if plan is None:  # built on first use, whatever the time: plans hold for every day
            # Reason codes of the first two actions held by the plan, the others' from the memo.
            plan = engine.plans(customers, AT - dt.timedelta(days=30), context, profiles, reasons=2)[0]
            plans.put(key, plan)
        got = engine.rank_planned(plan, block, at, top_k, step, history=planned)
        suppressed |= {s.reason for s in want.suppressed or []}
        assert got.suppressed is None
        assert got.model_dump(exclude={"decision_id", "suppressed"}) == want.model_dump(exclude={"decision_id", "suppressed"}), step
        assert got.model_dump_json(exclude={"decision_id", "suppressed"}) == want.model_dump_json(exclude={"decision_id", "suppressed"})
    assert plans.hits > plans.misses
    assert engine.reasons_from_plans > 0 and block.memo is not None and block.memo.misses > 0
    # The contact policy did act on both paths.
    assert {"complaint", "negative_response"} <= suppressed
    assert not capped or CAPS & suppressed


@pytest.mark.parametrize("capacities", [{}, {"sms": 4, "email": 25}], ids=["uncapped", "capacities-bind"])
@pytest.mark.parametrize(("variant", "capped"), VARIANTS[:2], ids=["epsilon", "softmax-boost"])
def test_ranking_customers_together_equals_one_after_the_other(
    variant: dict, capped: bool, capacities: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service ranks a micro-batch's distinct customers in one pass: the same documents, caps included."""
    config = with_capacity(with_policy(load_config(), experiment=ARMS, **variant), **capacities)
    engine = DecisionEngine(config, {"champion": context_scorer()})
    features = random_features(config, 40, seed=3)
    block = snapshot(engine, features, offer_history(config, features["customer_id"].to_numpy(), 8))
    profiles = profiles_of(features)
    ids = features["customer_id"].to_numpy()
    plans = {int(c): p for c, p in zip(ids, engine.plans(block.take(np.arange(len(ids))), AT - dt.timedelta(days=30), None, profiles, reasons=2), strict=True)}
    one_by_one, together = ContactHistory.empty(config), ContactHistory.empty(config)
    passes = {"together": 0, "one by one": 0}
    binding = plans_module._caps_bind

    def spy(*args: object) -> bool:
        bound = binding(*args)
        passes["one by one" if bound else "together"] += 1
        return bound

    monkeypatch.setattr(plans_module, "_caps_bind", spy)
    rng = np.random.default_rng(4)
    for step in range(40):
        batch = rng.choice(ids, size=int(rng.integers(2, 9)), replace=False).tolist()
        at = AT + dt.timedelta(hours=step)
        top_k = rng.integers(1, 5, size=len(batch)).tolist()
        # Requests of one batch share a seed, or bring their own.
        seeds = [step if i % 3 else 10_000 + 10 * step + i for i in range(len(batch))]
        want = [engine.rank_planned(plans[c], block, at, k, s, history=one_by_one) for c, k, s in zip(batch, top_k, seeds, strict=True)]
        got = engine.rank_planned_many([plans[c] for c in batch], block, at, top_k, seeds, history=together)
        for w, g in zip(want, got, strict=True):
            assert g.model_dump(exclude={"decision_id"}) == w.model_dump(exclude={"decision_id"}), step
    assert passes["together"] > 0
    assert not capacities or passes["one by one"] > 0
    # Both histories hold the same contacts.
    view_a, view_b = one_by_one.view(ids, AT + dt.timedelta(days=2)), together.view(ids, AT + dt.timedelta(days=2))
    for a, b in zip(vars(view_a).values(), vars(view_b).values(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_plans_of_a_batch_equal_plans_one_by_one() -> None:
    config = load_config()
    engine = DecisionEngine(config, {"champion": fitted_scorer()})
    features = random_features(config, 40, seed=2)
    block = snapshot(engine, features, offer_history(config, features["customer_id"].to_numpy(), 2))
    pos = np.arange(0, 41, 4)
    together = engine.plans(block.take(pos), AT, reasons=3)
    assert all(len(plan.reasons) == min(3, len(plan.pairs)) for plan in together if plan.values[:3, 0].min() > 0)
    for p, plan in zip(pos, together, strict=True):
        alone = engine.plans(block.take(np.array([p])), AT, reasons=3)[0]
        assert plan.customer_id == alone.customer_id and plan.origin == p
        for a, b in zip(plan, alone, strict=True):
            np.testing.assert_array_equal(a, b)


def test_plan_cache_keeps_the_most_recently_used() -> None:
    config = load_config()
    engine = DecisionEngine(config, {"champion": fitted_scorer()})
    features = random_features(config, 5, seed=1)
    plans = engine.plans(engine.prepare(features), AT)
    cache = PlanCache(2)
    keys = [(p.customer_id, None, None) for p in plans]
    cache.put(keys[0], plans[0])
    cache.put(keys[1], plans[1])
    assert cache.get(keys[0]) is plans[0]  # now the most recent
    cache.put(keys[2], plans[2])
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is plans[0] and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1)
    assert cache.nbytes == plans[0].nbytes + plans[2].nbytes > 0
    PlanCache(0).put(keys[0], plans[0])  # size 0 keeps nothing


def _trigger_of(action: object) -> str | None:
    """The trigger that fired for a ranked action (``None``: none, or no action)."""
    p = action.personalisation  # type: ignore[attr-defined]
    return p.trigger if p is not None else None


def _refiring(config: NextbestConfig, days: int) -> NextbestConfig:
    """``config`` with every trigger's re-fire cool-down set to ``days``."""
    raw = config.model_dump()
    for t in raw["policy"]["triggers"]:
        t["refire_cooldown_days"] = days
    return NextbestConfig.model_validate(raw)


@pytest.mark.parametrize("event", ["newsletter_signup_recent", "moved_recently"], ids=["force", "boost"])
def test_trigger_fires_once_per_event_and_again_after_its_cool_down(event: str) -> None:
    """An event that lasts fires its trigger until the trigger's offer goes out, then not again before the
    cool-down ends; the engine's batch path and the service's planned path agree day by day."""
    cooldown = 10
    config = _refiring(with_policy(load_config(), experiment=ARMS, exploration={"method": "none"}), cooldown)
    trigger = next(t for t in config.policy.triggers if t.event == event)
    engine = DecisionEngine(config, {"champion": context_scorer()})
    features = random_features(config, 40, seed=5).assign(
        moved_recently=event == "moved_recently", newsletter_signup_recent=event == "newsletter_signup_recent",
        birthday_within_7d=False, contract_end_within_7d=False, order_count_crossed=False,
    )
    # Every third customer new enough for the welcome offer (the newsletter trigger's).
    features["tenure_days"] = np.where(np.arange(len(features)) % 3 == 0, 30.0, features["tenure_days"])
    oh = offer_history(config, features["customer_id"].to_numpy(), 5)
    block = snapshot(engine, features, oh)
    reference, planned = ContactHistory.empty(config), ContactHistory.empty(config)
    plans = engine.plans(block.take(np.arange(len(features))), AT, Context())
    sent_on: dict[int, int] = {}
    fired_days: dict[int, list[int]] = {}
    for day in range(2 * cooldown + 2):
        at = AT + dt.timedelta(days=day)
        want = engine.rank(block.take(np.arange(len(features))), at, Context(), 2, day, history=reference, explain=True)
        got = [engine.rank_planned(p, block, at, 2, day, history=planned) for p in plans]
        for w, g in zip(want, got, strict=True):
            assert g.model_dump(exclude={"decision_id", "suppressed"}) == w.model_dump(exclude={"decision_id", "suppressed"})
            cid = w.customer_id
            if any(_trigger_of(a) == trigger.id for a in w.actions):
                fired_days.setdefault(cid, []).append(day)
            top = w.actions[0]
            if w.contacted and top.offer_id in trigger.offers:
                sent_on.setdefault(cid, day)
            # Not again within the cool-down of the first sending, though the event is still on.
            last = sent_on.get(cid)
            if last is not None and last < day < last + cooldown:
                assert all(_trigger_of(a) != trigger.id for a in w.actions), (cid, day)
    # The trigger fired, went quiet once its offer was sent, and fired again after the cool-down.
    again = [cid for cid, first in sent_on.items() if any(d >= first + cooldown for d in fired_days.get(cid, []))]
    assert sent_on and again
    assert all(first + 1 not in fired_days[cid] for cid, first in sent_on.items())
