"""Campaign planning: every constraint holds, the gap is proven, and it beats greedy ranking."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from tests.decisioning.decisioning_helpers import fitted_scorer

from nextbest.config import NextbestConfig
from nextbest.decisioning.campaign import PLAN_COLUMNS, plan_campaign
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.synthetic import random_features
from nextbest.errors import BadInputError

AT = dt.datetime(2024, 6, 3, 9)


@pytest.fixture
def tight(config: NextbestConfig) -> NextbestConfig:
    raw = config.model_dump()
    for ch in raw["channels"]["channels"]:
        ch["daily_capacity"] = {"email": 150, "sms": 20, "push": 100, "direct_mail": 10, "outbound_call": 3}.get(ch["id"])
    raw["offers"]["offers"][4]["max_contacts"] = 12  # sports_gear
    raw["policy"]["arbitration"]["min_expected_value"] = 0.0
    return NextbestConfig.model_validate(raw)


@pytest.mark.parametrize(("budget", "k"), [(5.0, 1), (15.0, 2), (1000.0, 3)])
def test_plan_respects_every_constraint(tight: NextbestConfig, budget: float, k: int) -> None:
    features = random_features(tight, 400, 9)
    history = ContactHistory.empty(tight)
    history.record(
        pd.DataFrame({"customer_id": [1, 1], "ts": [AT - dt.timedelta(days=1)] * 2, "offer_id": ["book_club", "beauty_box"],
                      "channel": ["email", "sms"], "contacted": [True, True]})
    )
    engine = DecisionEngine(tight, {"champion": fitted_scorer()})
    result = plan_campaign(engine, features, AT, budget, k=k, history=history)
    plan = result.plan
    assert set(PLAN_COLUMNS) <= set(plan.columns)
    policy = tight.policy.contact
    assert plan.groupby("customer_id").size().max() <= min(k, policy.max_contacts)
    assert plan["cost"].sum() <= budget + 1e-9
    for ch in tight.channels.channels:
        if ch.daily_capacity is not None:
            assert (plan["channel"] == ch.id).sum() <= ch.daily_capacity
    assert (plan["offer_id"] == "sports_gear").sum() <= 12
    per_channel = plan.groupby(["customer_id", "channel"]).size()
    for (_, ch), count in per_channel.items():
        assert count <= policy.max_contacts_per_channel.get(ch, 99)
    assert not plan.duplicated(["customer_id", "offer_id"]).any()
    assert (plan.loc[plan["customer_id"] == 1].shape[0]) == 0  # already at max_contacts (2) this week
    assert set(plan["channel"]) <= {c.id for c in tight.channels.channels if c.personal}
    assert not plan["arm"].eq("control").any()
    assert (plan["expected_value"] > 0).all()
    assert 0 <= result.gap <= 1e-3
    assert result.value <= result.lp_bound + 1e-6
    assert result.value >= result.greedy_value - 1e-6
    assert result.value == pytest.approx(plan["expected_value"].sum())


@pytest.mark.parametrize(("budget", "k", "message"), [(-1.0, 1, "--budget -1.0: must be >= 0"), (10.0, 0, "--k 0: must be at least 1")])
def test_bad_plan_arguments(config: NextbestConfig, budget: float, k: int, message: str) -> None:
    engine = DecisionEngine(config, {"champion": fitted_scorer()})
    with pytest.raises(BadInputError, match=message):
        plan_campaign(engine, random_features(config, 10, 0), AT, budget, k=k)
