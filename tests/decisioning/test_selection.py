"""Exploring contact versus no action: exact propensities, matching draws, the contact policy kept."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.scoring import in_universal_control
from nextbest.decisioning.selection import EPSILON, GREEDY, SOFTMAX, Groups, draw_contact, propensities
from nextbest.decisioning.synthetic import random_features

from tests.decisioning.decisioning_helpers import fitted_scorer, with_policy

AT = dt.datetime(2024, 6, 3, 9, 0)


def _blocks(seed: int, n: int) -> tuple[Groups, np.ndarray, np.ndarray, np.ndarray]:
    """Random sorted candidate blocks: customers with 0-6 rows, keys descending, a threshold cutting them."""
    rng = np.random.default_rng(seed)
    count = rng.integers(0, 7, n)
    cust = np.repeat(np.arange(n), count)
    groups = Groups.of(cust, n)
    key = np.concatenate([np.sort(rng.normal(size=c))[::-1] for c in count]) if count.sum() else np.zeros(0)
    in_set = key > 0.3
    policy = rng.choice([GREEDY, EPSILON, SOFTMAX], n)
    return groups, key, in_set, policy


@pytest.mark.parametrize("share", [0.0, 0.1, 0.4])
def test_row_and_no_action_propensities_sum_to_one(share: float) -> None:
    groups, key, in_set, policy = _blocks(1, 400)
    prop, m = propensities(groups, key, in_set, policy, top_n=3, epsilon=0.2, temperature=0.5)
    explore = policy != GREEDY
    u = np.random.default_rng(2).random(len(m))
    pick, prop, p_none = draw_contact(groups, prop, m, u, explore, share)
    total = np.bincount(groups.cust, weights=prop, minlength=len(m)) + p_none
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    # The choice made always had a positive probability.
    chosen = pick >= 0
    assert (prop[pick[chosen]] > 0).all() and (p_none[~chosen] > 0).all()
    # Below the threshold an exploring customer is offered its best candidate only; above it, held out with `share`.
    below = explore & (m == 0) & (groups.count > 0)
    np.testing.assert_allclose(p_none[below], 1.0 - share)
    np.testing.assert_allclose(p_none[explore & (m > 0)], share)
    assert (p_none[~explore & (m > 0)] == 0).all()


def test_draw_frequencies_match_the_propensities() -> None:
    """Each customer drawn with 20,000 fresh uniforms: the choice frequencies follow the logged propensities."""
    groups, key, in_set, policy = _blocks(5, 12)
    prop, m = propensities(groups, key, in_set, policy, top_n=3, epsilon=0.3, temperature=0.5)
    explore = policy != GREEDY
    draws = 20_000
    rng = np.random.default_rng(7)
    n = len(m)
    counts_rows = np.zeros(len(prop))
    counts_none = np.zeros(n)
    logged_rows = logged_none = None
    for _ in range(draws):
        pick, logged_rows, logged_none = draw_contact(groups, prop, m, rng.random(n), explore, 0.25)
        np.add.at(counts_rows, pick[pick >= 0], 1)
        counts_none += pick < 0
    assert logged_rows is not None and logged_none is not None
    # Binomial standard error at 20,000 draws is at most 0.0036: 5 of them is a loose, never-flaky bound.
    np.testing.assert_allclose(counts_rows / draws, logged_rows, atol=0.018)
    np.testing.assert_allclose(counts_none / draws, logged_none, atol=0.018)
    assert (counts_rows[logged_rows == 0] == 0).all()


def _engine(config: NextbestConfig) -> DecisionEngine:
    return DecisionEngine(config, {"champion": fitted_scorer()})


def _one_arm(config: NextbestConfig, **changes: object) -> NextbestConfig:
    arms = {"name": "explore", "arms": [{"name": "champion", "share": 1.0, "policy": "model", "model_alias": "champion"}]}
    return with_policy(config, experiment=arms, universal_control={"share": 0.0}, **changes)


@pytest.mark.parametrize(("threshold", "contacted_share"), [(1e9, 0.2), (-1e9, 0.8)], ids=["all-below", "all-above"])
def test_engine_explores_contact_versus_no_action_with_its_propensity(
    threshold: float, contacted_share: float
) -> None:
    config = _one_arm(
        load_config(), exploration={"method": "epsilon_greedy", "contact_epsilon": 0.2},
        arbitration={"min_expected_value": threshold},
    )
    features = random_features(config, 2000, seed=4).assign(newsletter_signup_recent=False)  # no forced trigger
    out = _engine(config).decide(features, AT, seed=3, top_k=1)
    d = out.decisions
    contacted = d["contacted"].to_numpy()
    # Customers no rule left a candidate have no choice: no action for sure.
    choice = out.actions.groupby("customer_id")["propensity"].first().reindex(d["customer_id"]).to_numpy() < 1
    assert choice.sum() > 1000
    assert abs(contacted[choice].mean() - contacted_share) < 0.04
    sent, kept = d[contacted], d[~contacted & choice]
    if threshold > 0:  # sent below the threshold: propensity 0.2, the rest held with 0.8
        np.testing.assert_allclose(sent["propensity"], 0.2)
        np.testing.assert_allclose(kept["propensity"], 0.8)
        assert out.actions.loc[out.actions["offer_id"].notna(), "explored"].all()
    else:  # above it: held out with 0.2, every contact's propensity a share of 0.8
        np.testing.assert_allclose(kept["propensity"], 0.2)
        assert (sent["propensity"] <= 0.8 + 1e-12).all() and (sent["propensity"] > 0).all()
    assert kept["offer_id"].isna().all()


def test_contact_exploration_never_breaks_the_contact_policy() -> None:
    """A month of daily decisions, contacts only from exploration below the threshold: caps and cool-downs hold."""
    config = _one_arm(
        load_config(),
        contact={"window_days": 7, "max_contacts": 2, "max_contacts_per_channel": {"sms": 1, "email": 1}, "offer_cooldown_days": 10},
        exploration={"method": "epsilon_greedy", "epsilon": 0.5, "top_n": 50, "contact_epsilon": 0.5},
        arbitration={"min_expected_value": 1e9},
        stages={"mode": "off", "min_stage_for_channel": {}},
        triggers=[],
    )
    raw = config.model_dump()
    for channel in raw["channels"]["channels"]:  # the free web banner would always be the best row: price it out
        channel["cost_per_contact"] = 5.0 if channel["id"] == "web" else channel["cost_per_contact"]
    config = NextbestConfig.model_validate(raw)
    features = random_features(config, 150, seed=9)
    # Complaints suppress personal channels for good in this window.
    complainers = features["customer_id"].to_numpy()[:10]
    engine = _engine(config)
    history = ContactHistory.empty(config)
    history.record_negative(complainers, AT - dt.timedelta(days=1), "complaint")
    logged = []
    for day in range(30):
        at = AT + dt.timedelta(days=day)
        logged.append(engine.decide(features, at, seed=day, history=history).decisions)
    log = pd.concat(logged, ignore_index=True)
    personal = log[log["contacted"] & (log["channel"] != "web")]
    assert len(personal) > 300  # exploration did contact, a lot
    assert not personal["customer_id"].isin(complainers).any()
    for end in pd.date_range(AT, periods=30, freq="D"):
        window = personal[(personal["ts"] > end - pd.Timedelta(days=7)) & (personal["ts"] <= end)]
        assert window.groupby("customer_id").size().max() <= 2
        capped = window[window["channel"].isin(["sms", "email"])]
        assert capped.empty or capped.groupby(["customer_id", "channel"]).size().max() <= 1
    gaps = personal.sort_values("ts").groupby(["customer_id", "offer_id"])["ts"].diff().dropna()
    assert (gaps >= pd.Timedelta(days=10)).all()


def test_universal_control_is_decided_logged_and_never_contacted() -> None:
    config = with_policy(
        load_config(), universal_control={"share": 0.1},
        exploration={"contact_epsilon": 0.3}, arbitration={"min_expected_value": -1e9},
    )
    features = random_features(config, 3000, seed=6)
    out = _engine(config).decide(features, AT, seed=1)
    d = out.decisions
    held = d["arm"] == "universal_control"
    assert abs(held.mean() - 0.1) < 0.02
    assert not d.loc[held, "contacted"].any()
    assert d.loc[held, "offer_id"].notna().mean() > 0.5  # the action it would have been sent, withheld
    assert d.loc[~held, "contacted"].any()
    np.testing.assert_array_equal(held.to_numpy(), in_universal_control(d["customer_id"].to_numpy(), config))
    # Its own salt: another experiment (name, salt, arms) holds out the very same customers.
    other = with_policy(config, experiment={"name": "next", "salt": "reshuffled", "arms": [
        {"name": "champion", "share": 0.5, "policy": "model", "model_alias": "champion"},
        {"name": "control", "share": 0.5, "policy": "control"},
    ]})
    again = _engine(other).decide(features, AT, seed=1).decisions
    np.testing.assert_array_equal((again["arm"] == "universal_control").to_numpy(), held.to_numpy())
    assert not again.loc[again["arm"] == "universal_control", "contacted"].any()
    # The campaign planner holds them out too.
    from nextbest.decisioning.campaign import plan_campaign

    plan = plan_campaign(_engine(config), features, AT, budget=1e6)
    assert not plan.plan["customer_id"].isin(d.loc[held, "customer_id"]).any()
