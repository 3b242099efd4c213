"""The decision engine: hard guarantees as properties, and the documented behaviours."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.documents import Context, RankResponse
from nextbest.decisioning.engine import DecisionEngine, assign_arms, complete_features, salutation
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.scoring import in_universal_control
from nextbest.decisioning.log import decision_rows
from nextbest.decisioning.synthetic import random_features
from nextbest.errors import BadInputError, NotFoundError

from tests.decisioning.decisioning_helpers import fitted_scorer, with_policy

AT = dt.datetime(2024, 6, 3, 9, 0)
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _engine(config: NextbestConfig) -> DecisionEngine:
    return DecisionEngine(config, {"champion": fitted_scorer()})


def _reachable(features: pd.DataFrame, config: NextbestConfig) -> pd.DataFrame:
    """Long frame customer_id, channel, ok: where a contact is allowed by consent and validity."""
    parts = []
    for ch in config.channels.channels:
        ok = np.ones(len(features), dtype=bool) if not ch.personal else (
            features[f"consent_{ch.id}"].astype("boolean").fillna(False).to_numpy(dtype=bool)
            & features[f"reachable_{ch.id}"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        )
        parts.append(pd.DataFrame({"customer_id": features["customer_id"], "channel": ch.id, "ok": ok}))
    return pd.concat(parts, ignore_index=True)


configs = st.fixed_dictionaries(
    {
        "exploration": st.fixed_dictionaries(
            {"method": st.sampled_from(["epsilon_greedy", "softmax", "none"]), "epsilon": st.floats(0, 1), "top_n": st.integers(1, 6)}
        ),
        "arbitration": st.fixed_dictionaries(
            {"objective": st.sampled_from(["uplift", "response"]), "min_expected_value": st.sampled_from([-5.0, 0.0, 0.2])}
        ),
        "stages": st.fixed_dictionaries({"mode": st.sampled_from(["gate", "boost", "off"])}),
    }
)


@PROPERTY
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), changes=configs, consent_share=st.floats(0, 1))
def test_never_proposes_a_channel_without_consent_or_valid_contact(seed, n, changes, consent_share) -> None:
    config = with_policy(load_config(), **changes)
    features = random_features(config, n, seed)
    rng = np.random.default_rng(seed)
    for ch in config.channels.channels:  # reshuffle consent so every mix occurs, nulls included
        if ch.personal:
            consent = pd.array(rng.random(n) < consent_share, dtype="boolean")
            consent[rng.random(n) < 0.2] = pd.NA
            features[f"consent_{ch.id}"] = consent
            features[f"reachable_{ch.id}"] = pd.array(np.where(rng.random(n) < 0.2, None, rng.random(n) < 0.7), dtype="boolean")
    out = _engine(config).decide(features, AT, seed=seed, top_k=50)
    proposed = out.actions.dropna(subset=["channel"]).merge(_reachable(features, config), on=["customer_id", "channel"])
    assert proposed["ok"].all(), proposed.loc[~proposed["ok"], ["customer_id", "offer_id", "channel"]]
    # the suppression for consent/validity is explained per candidate
    assert len(out.actions.query("rank == 1")) == n


@PROPERTY
@given(seed=st.integers(0, 10_000), changes=configs)
def test_logged_propensities_sum_to_one_over_the_candidates(seed, changes) -> None:
    config = with_policy(load_config(), **changes)
    features = random_features(config, 40, seed)
    out = _engine(config).decide(features, AT, seed=seed, top_k=50)
    acted = out.actions.dropna(subset=["offer_id"])
    totals = acted.groupby("customer_id")["propensity"].sum()
    np.testing.assert_allclose(totals.to_numpy(), 1.0, atol=1e-9)
    chosen = out.decisions.set_index("customer_id")["propensity"]
    assert ((chosen > 0) & (chosen <= 1)).all()
    nothing = out.actions[out.actions["offer_id"].isna()]
    assert (nothing["propensity"] == 1.0).all()


def test_identical_inputs_give_identical_decisions_however_the_batch_is_split(config, features) -> None:
    engine = _engine(config)
    columns = ["customer_id", "offer_id", "channel", "arm", "propensity", "score", "contacted"]
    whole = engine.decide(features, AT, seed=7).decisions[columns]
    again = engine.decide(features, AT, seed=7).decisions[columns]
    halves = pd.concat(
        [engine.decide(features.iloc[:120], AT, seed=7).decisions, engine.decide(features.iloc[120:], AT, seed=7).decisions],
        ignore_index=True,
    )[columns]
    pd.testing.assert_frame_equal(whole, again)
    pd.testing.assert_frame_equal(whole, halves)


def test_contact_caps_hold_over_a_simulated_month(config) -> None:
    config = with_policy(
        config,
        contact={"window_days": 7, "max_contacts": 2, "max_contacts_per_channel": {"sms": 1, "email": 1}, "offer_cooldown_days": 10},
        # Explore widely so every channel, the costly SMS included, gets chosen: stress the caps.
        exploration={"method": "epsilon_greedy", "epsilon": 0.5, "top_n": 50},
        arbitration={"min_expected_value": -100.0},  # contact whenever allowed
        stages={"mode": "off", "min_stage_for_channel": {}},  # every channel open to everyone: stress the SMS capacity
    )
    raw = config.model_dump()
    raw["channels"]["channels"][1]["daily_capacity"] = 15  # sms
    raw["offers"]["offers"][4]["max_contacts"] = 40  # sports_gear
    config = NextbestConfig.model_validate(raw)
    features = random_features(config, 120, seed=5)
    engine = _engine(config)
    history = ContactHistory.empty(config)
    logged = []
    for day in range(30):
        at = dt.datetime(2024, 6, 1, 9) + dt.timedelta(days=day)
        logged.append(engine.decide(features, at, seed=day, history=history).decisions)
    log = pd.concat(logged, ignore_index=True)
    contacts = log[log["contacted"]].copy()
    assert len(contacts) > 500  # the policy did contact a lot
    personal = contacts[contacts["channel"] != "web"]
    days = pd.date_range("2024-06-01 09:00", periods=30, freq="D")
    for end in days:  # every rolling window (end - 7 days, end]
        window = personal[(personal["ts"] > end - pd.Timedelta(days=7)) & (personal["ts"] <= end)]
        assert window.groupby("customer_id").size().max() <= 2
        capped = window[window["channel"].isin(["sms", "email"])]
        assert capped.groupby(["customer_id", "channel"]).size().max(skipna=True) <= 1 or capped.empty
    per_offer = personal.sort_values("ts").groupby(["customer_id", "offer_id"])["ts"].diff().dropna()
    assert (per_offer >= pd.Timedelta(days=10)).all()
    sms = contacts[contacts["channel"] == "sms"]
    assert len(sms) > 0, "the SMS capacity must be exercised"
    assert sms.groupby(sms["ts"].dt.date).size().max() <= 15
    assert (contacts["offer_id"] == "sports_gear").sum() <= 40


def test_complaint_suppresses_personal_channels(config, features) -> None:
    history = ContactHistory.empty(config)
    victim = int(features["customer_id"].iloc[0])
    history.record_negative(np.array([victim]), AT - dt.timedelta(days=3), "complaint")
    out = _engine(config).decide(features, AT, seed=1, history=history, top_k=50, explain=True)
    mine = out.actions[out.actions["customer_id"] == victim]
    assert set(mine["channel"].dropna()) <= {"web"}
    reasons = out.suppressed[out.suppressed["customer_id"] == victim].set_index("channel")["reason"]
    assert "complaint" in set(reasons)


def test_no_action_wins_when_nothing_has_positive_value(config, features) -> None:
    config = with_policy(config, arbitration={"min_expected_value": 1e9})
    features = features.assign(newsletter_signup_recent=False)  # a forced trigger would still act
    out = _engine(config).decide(features, AT, seed=1, top_k=3)
    assert out.decisions["offer_id"].isna().all()
    assert not out.decisions["contacted"].any()
    assert (out.actions["rank"] == 1).all() and (out.actions["propensity"] == 1.0).all()


def test_control_arm_records_the_would_be_action_uncontacted(config, features) -> None:
    out = _engine(config).decide(features, AT, seed=1)
    control = out.decisions[out.decisions["arm"] == "control"]
    assert len(control) > 0
    assert not control["contacted"].any()
    assert control["offer_id"].notna().any()
    # a customer's arm never changes
    ids = features["customer_id"].to_numpy()
    again = assign_arms(ids, config)
    names = np.array([a.name for a in config.policy.experiment.arms])[again]
    served = np.where(names == "challenger", "champion", names)  # no challenger model: served as champion
    served = np.where(in_universal_control(ids, config), "universal_control", served)  # held out of every arm
    assert (served == out.decisions["arm"].to_numpy()).all()


def test_arm_shares_follow_the_config(config) -> None:
    arms = assign_arms(np.arange(1, 50_001), config)
    shares = np.bincount(arms, minlength=3) / len(arms)
    np.testing.assert_allclose(shares, [a.share for a in config.policy.experiment.arms], atol=0.01)


def test_forced_trigger_from_context_event(config, features) -> None:
    features = features.assign(tenure_days=30.0, newsletter_signup_recent=False)
    out = _engine(config).decide(features, AT, seed=2, context=Context(channel="web", event="newsletter_signup_recent"))
    top = out.actions[out.actions["rank"] == 1]
    assert (top["offer_id"] == "welcome_tips").all() and (top["channel"] == "web").all()
    assert (top["propensity"] == 1.0).all() and top["forced"].all()


def test_eligibility_rule_removes_and_explains(config, features) -> None:
    features = features.assign(age=20.0)
    out = _engine(config).decide(features, AT, seed=1, top_k=50, explain=True)
    assert "reading_glasses" not in set(out.actions["offer_id"].dropna())
    glasses = out.suppressed[out.suppressed["offer_id"] == "reading_glasses"]
    assert set(glasses["reason"]) <= {"eligibility", "no_consent", "unreachable"}
    assert "age >= 40" in set(glasses["detail"])


def test_cold_start_customer_gets_only_non_personal_channels(config, features) -> None:
    frame = complete_features(features.iloc[:2], np.array([int(features["customer_id"].iloc[0]), 999_999]))
    docs = _engine(config).rank(frame, AT, seed=1)
    assert [d.cold_start for d in docs] == [False, True]
    assert {a.channel for a in docs[1].actions} <= {"web", None}


@pytest.mark.parametrize("channel", ["email", "sms", "outbound_call"])
def test_customers_left_without_any_candidate_get_no_action(config, features, channel: str) -> None:
    """Cold-start customers asked on a personal channel: unknown consent removes every candidate of the
    whole batch. The draw over zero rows once raised IndexError (HTTP 500 from /rank and /rank_batch)."""
    engine = _engine(config)
    frame = complete_features(features.iloc[:0], np.array([999_998, 999_999]), list(features.columns[1:]))
    context = Context(channel=channel)
    nothing = [(None, None)]
    for doc in engine.rank(frame, AT, context, seed=1):
        assert doc.cold_start and not doc.contacted
        assert [(a.offer_id, a.channel) for a in doc.actions] == nothing
        assert {s.reason for s in doc.suppressed or []} <= {"no_consent", "unreachable"}
    block = engine.prepare(frame)
    plan = engine.plans(block, AT, context)[0]
    planned = engine.rank_planned(plan, block, AT, 3, 1, history=ContactHistory.empty(config))
    assert [(a.offer_id, a.channel) for a in planned.actions] == nothing


def test_rank_document_carries_terms_reasons_and_personalisation(config, features) -> None:
    profiles = pd.DataFrame({"customer_id": features["customer_id"], "first_name": "Anna", "gender": "f"})
    features = features.assign(interest_category="shoes")
    docs = _engine(config).rank(features.iloc[:5], AT, top_k=3, seed=3, profiles=profiles)
    doc = RankResponse.model_validate_json(docs[0].model_dump_json())
    assert doc.experiment == config.policy.experiment.name and doc.model_version == "test-model/1"
    for a in doc.actions:
        if a.offer_id is None:
            continue
        gain = (a.uplift if config.policy.arbitration.objective == "uplift" else a.probability) * a.value * a.lever * a.boost
        assert a.expected_value == pytest.approx(gain - a.cost)
        assert a.personalisation.salutation == "Dear Anna" and a.personalisation.category == "shoes"
        assert a.personalisation.message.startswith("Dear Anna")
        assert any(":" in r for r in a.reasons)  # model contributions
    assert doc.suppressed is not None and all(s.reason for s in doc.suppressed)
    rows = decision_rows(docs)
    assert list(rows["decision_id"]) == [d.decision_id for d in docs]


@pytest.mark.parametrize(
    ("first_name", "gender", "expected"),
    [("Anna", "f", "Dear Anna"), (None, "f", "Dear Madam"), ("", "m", "Dear Sir"), (None, "x", "Hello"), (None, None, "Hello")],
)
def test_salutation(first_name, gender, expected) -> None:
    assert salutation(first_name, gender) == expected


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda f: f.drop(columns="customer_id"), BadInputError, "feature frame has no 'customer_id' column"),
        (lambda f: pd.concat([f, f.iloc[:1]]), BadInputError, "duplicate customer_id"),
        (lambda f: f.drop(columns="reachable_email"), BadInputError, "feature frame has no column 'reachable_email'"),
        (lambda f: f.drop(columns="journey_stage"), BadInputError, "no column 'journey_stage'"),
    ],
)
def test_bad_feature_frames_are_rejected(config, features, mutate, error, message) -> None:
    with pytest.raises(error, match=message):
        _engine(config).decide(mutate(features), AT, seed=1)


def test_unknown_context_channel_is_rejected(config, features) -> None:
    with pytest.raises(BadInputError, match="context channel 'fax' is not configured"):
        _engine(config).decide(features, AT, context=Context(channel="fax"))


def test_engine_needs_a_scorer(config) -> None:
    with pytest.raises(NotFoundError, match="run `nextbest train`"):
        DecisionEngine(config, {})


def test_rank_documents_present_what_decide_chooses(config, features) -> None:
    """``rank`` builds its documents from the same arrays as ``decide``: same choices, same order."""
    engine = _engine(config)
    out = engine.decide(features.iloc[:40], AT, seed=4, top_k=3, explain=True, history=ContactHistory.empty(config))
    docs = engine.rank(features.iloc[:40], AT, top_k=3, seed=4, history=ContactHistory.empty(config))
    assert [d.customer_id for d in docs] == out.decisions["customer_id"].tolist()
    for doc, (_, acts) in zip(docs, out.actions.groupby("customer_id", sort=False), strict=True):
        assert [(a.rank, a.offer_id, a.channel, a.reasons) for a in doc.actions] == [
            (r.rank, r.offer_id, r.channel, r.reasons) for r in acts.itertuples()
        ]
        assert [a.propensity for a in doc.actions] == pytest.approx(acts["propensity"].tolist())
    doc = RankResponse.model_validate_json(docs[0].model_dump_json())  # constructed documents are valid documents
    assert doc == docs[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "greater than or equal to 0"), ("soon", "valid integer"), (1.5, "valid integer")],
)
def test_trigger_refire_cooldown_is_validated(value: object, message: str) -> None:
    raw = load_config().model_dump()
    raw["policy"]["triggers"][0]["refire_cooldown_days"] = value
    with pytest.raises(ValueError, match=message) as err:
        NextbestConfig.model_validate(raw)
    assert "refire_cooldown_days" in str(err.value)
