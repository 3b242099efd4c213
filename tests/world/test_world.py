"""The World object and the history it writes: determinism, truth, defects, stepping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from nextbest.errors import BadInputError, NotFoundError
from nextbest.warehouse.db import connect
from nextbest.warehouse.schema import TABLES
from nextbest.world import SEGMENTS, World
from nextbest.world.personal import EMAIL_PATTERN, PHONE_PATTERN

from .conftest import DAYS, N_CUSTOMERS, SEED

START = dt.date(2024, 1, 1)
ORDER_BY = {
    "customers": "customer_id",
    "interactions": "customer_id, ts, type",
    "transactions": "order_id, category",
    "life_events": "customer_id, ts, event_type",
    "decisions": "decision_id",
    "responses": "decision_id, outcome",
}


def _write(path: Path, n: int, days: int, seed: int) -> dict[str, pd.DataFrame]:
    con = connect(path)
    try:
        World.create(n, seed=seed).write_history(con, days)
        tables = {t: con.execute(f"SELECT * FROM {t} ORDER BY {o}").df() for t, o in ORDER_BY.items()}
        tables["decision_truth"] = con.execute("SELECT * FROM ground_truth.decision_truth ORDER BY decision_id").df()
        tables["seeded_defects"] = con.execute("SELECT * FROM ground_truth.seeded_defects ORDER BY ALL").df()
    finally:
        con.close()
    return tables


# ---------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_tables_and_another_seed_differs(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.duckdb", 250, 15, seed=5)
    b = _write(tmp_path / "b.duckdb", 250, 15, seed=5)
    c = _write(tmp_path / "c.duckdb", 250, 15, seed=6)
    for name in a:
        assert len(a[name]) > 0, name
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    assert not a["customers"]["email"].equals(c["customers"]["email"])
    assert len(a["interactions"]) != len(c["interactions"])


# ---------------------------------------------------------------------------- contents
def test_every_contract_table_is_filled(con: duckdb.DuckDBPyConnection, generated) -> None:
    _, _, counts = generated
    for table in TABLES:
        n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert n > 0 and n == counts[table], table
    per_customer = counts["interactions"] / counts["customers"] / DAYS
    assert 0.25 < per_customer < 0.6  # ~50+ interactions per customer over 180 days


def test_over_100_distinct_interaction_types_follow_the_convention(con: duckdb.DuckDBPyConnection) -> None:
    types = [r[0] for r in con.execute("SELECT DISTINCT type FROM interactions").fetchall()]
    assert len(types) >= 100
    assert all(t.split(".")[0] in {"web", "app", "email", "store", "service", "social"} and t.count(".") >= 1 for t in types)


def test_nothing_is_dated_after_the_history_or_before_joining(con: duckdb.DuckDBPyConnection) -> None:
    end = pd.Timestamp(START + dt.timedelta(days=DAYS))
    for table in ("interactions", "transactions", "life_events", "decisions", "responses"):
        assert con.execute(f"SELECT max(ts) FROM {table}").fetchone()[0] < end, table
    early = con.execute(
        "SELECT count(*) FROM interactions i JOIN customers c USING (customer_id) WHERE i.ts < c.member_since"
    ).fetchone()[0]
    assert early == 0


def test_historical_campaign_design(con: duckdb.DuckDBPyConnection) -> None:
    d = con.execute("SELECT * FROM decisions").df()
    assert set(d["experiment"]) == {"historical", "frequency_test"}  # the frequency test: tests/world/test_frequency.py
    assert not d.duplicated(["customer_id", "ts"]).any()
    d = d[d["experiment"] == "historical"]
    assert set(d["arm"]) == {"random", "control"}
    assert (d["contacted"] == (d["arm"] == "random")).all()
    assert abs((d["arm"] == "control").mean() - 0.2) < 0.03
    assert d["propensity"].between(0, 1, inclusive="right").all()
    assert not d.duplicated(["customer_id", "ts"]).any()
    # Controls were never contacted, so they cannot open, click, complain or unsubscribe.
    bad = con.execute(
        "SELECT count(*) FROM responses r JOIN decisions d USING (decision_id) WHERE NOT d.contacted AND r.outcome <> 'conversion'"
    ).fetchone()[0]
    assert bad == 0


def test_conversions_carry_revenue_and_an_order(con: duckdb.DuckDBPyConnection) -> None:
    conv = con.execute(
        "SELECT r.revenue, t.amount FROM responses r LEFT JOIN transactions t ON t.order_id = 'c-' || r.decision_id "
        "WHERE r.outcome = 'conversion'"
    ).df()
    assert len(conv) > 50
    assert (conv["revenue"] > 0).all()
    np.testing.assert_allclose(conv["revenue"], conv["amount"])


# ---------------------------------------------------------------------------- ground truth
def test_observed_response_rate_by_arm_matches_the_truth(con: duckdb.DuckDBPyConnection) -> None:
    """Within a 4-sigma binomial bound, on decisions whose response window is complete."""
    rows = con.execute(
        """
        SELECT d.arm, count(*) AS n,
               sum((c.decision_id IS NOT NULL)::INT) AS observed,
               sum(CASE WHEN d.contacted THEN t.p_contact ELSE t.p_control END) AS expected,
               sum(CASE WHEN d.contacted THEN t.p_contact * (1 - t.p_contact) ELSE t.p_control * (1 - t.p_control) END) AS var
        FROM decisions d
        JOIN ground_truth.decision_truth t USING (decision_id)
        LEFT JOIN (SELECT DISTINCT decision_id FROM responses WHERE outcome = 'conversion') c USING (decision_id)
        WHERE d.ts < (SELECT max(ts) FROM decisions) - INTERVAL 14 DAY
        GROUP BY d.arm
        """
    ).df()
    assert set(rows["arm"]) == {"random", "control", *(f"freq{k}{s}" for k in (1, 2, 3) for s in ("", "_control"))}
    for r in rows.itertuples():
        assert abs(r.observed - r.expected) < 4 * np.sqrt(r.var), r


def test_truth_rows_match_decisions(con: duckdb.DuckDBPyConnection) -> None:
    n = con.execute(
        "SELECT count(*) FROM decisions d JOIN ground_truth.decision_truth t USING (decision_id, customer_id)"
    ).fetchone()[0]
    assert n == con.execute("SELECT count(*) FROM decisions").fetchone()[0]
    lo, hi = con.execute("SELECT min(least(p_contact, p_control)), max(greatest(p_contact, p_control)) FROM ground_truth.decision_truth").fetchone()
    assert 0 < lo and hi < 1


def test_true_probabilities_cover_every_offer_channel_pair(generated) -> None:
    world, _, _ = generated
    ids = world.population.customer_id[:50]
    truth = world.true_probabilities(ids)
    pairs = [(o.id, ch) for o in world.config.offers.offers for ch in o.channels]
    assert len(truth) == len(ids) * len(pairs)
    assert list(truth.columns) == ["customer_id", "offer_id", "channel", "p_control", "p_contact", "revenue"]
    assert truth[["p_control", "p_contact"]].gt(0).all().all() and truth[["p_control", "p_contact"]].lt(1).all().all()
    assert (truth["revenue"] > 0).all()
    assert set(zip(truth["offer_id"], truth["channel"])) == set(pairs)
    # p_control does not depend on the channel.
    assert truth.groupby(["customer_id", "offer_id"], observed=True)["p_control"].nunique().max() == 1


def test_base_rates_and_uplift_are_in_the_intended_range(generated) -> None:
    world, _, _ = generated
    truth = world.true_probabilities()
    assert 0.01 < truth["p_control"].mean() < 0.08
    uplift = truth["p_contact"] - truth["p_control"]
    assert 0.0 < uplift.mean() < 0.05
    assert (uplift < 0).mean() > 0.03  # sleeping dogs and over-contacted customers


def test_segments_behave_as_named(generated) -> None:
    world, _, _ = generated
    truth = world.true_probabilities()
    seg = pd.Series(np.asarray(SEGMENTS)[world.population.segment], index=world.population.customer_id)
    truth["segment"] = seg.loc[truth["customer_id"]].to_numpy()
    truth["uplift"] = truth["p_contact"] - truth["p_control"]
    by = truth.groupby("segment")[["p_control", "uplift"]].mean()
    assert by.loc["persuadable", "uplift"] == by["uplift"].max()
    assert by.loc["sleeping_dog", "uplift"] < 0
    assert by.loc["sure_thing", "p_control"] == by["p_control"].max()
    assert by.loc["lost_cause", "p_control"] == by["p_control"].min()


@pytest.mark.parametrize(
    ("channel", "older_better"),
    [("direct_mail", True), ("outbound_call", True), ("push", False), ("sms", False)],
)
def test_channel_effects_differ_by_age(generated, channel: str, older_better: bool) -> None:
    world, _, _ = generated
    truth = world.true_probabilities()
    truth = truth[truth["channel"] == channel]
    age = pd.Series(world.population.age, index=world.population.customer_id).loc[truth["customer_id"]].to_numpy()
    uplift = (truth["p_contact"] - truth["p_control"]).to_numpy()
    old, young = uplift[age >= 60].mean(), uplift[age < 35].mean()
    assert (old > young) == older_better


# ---------------------------------------------------------------------------- seeded defects
def test_seeded_defects_are_exactly_what_the_tables_show(con: duckdb.DuckDBPyConnection) -> None:
    cust = con.execute("SELECT * FROM customers").df()
    defects = con.execute("SELECT * FROM ground_truth.seeded_defects WHERE kind <> 'params'").df()
    seeded = {k: set(g["customer_id"]) for k, g in defects.groupby("kind")}

    email, phone = cust["email"], cust["phone"]
    email_ok = email.notna() & email.fillna("").str.match(EMAIL_PATTERN)
    phone_ok = phone.notna() & phone.fillna("").str.match(PHONE_PATTERN)
    assert seeded["invalid_email"] == set(cust.loc[email.notna() & ~email_ok, "customer_id"])
    assert seeded["invalid_phone"] == set(cust.loc[phone.notna() & ~phone_ok, "customer_id"])
    assert (cust["valid_email"] == email_ok).all()
    assert (cust["valid_phone"] == phone_ok).all()
    assert (cust["valid_address"] == cust["street_address"].notna()).all()

    for kind, col in (("duplicate_email", "email"), ("duplicate_phone", "phone")):
        shared = cust[cust[col].notna() & cust.duplicated(col, keep=False)]
        assert seeded[kind] == set(shared["customer_id"]), kind

    consent_cols = [c for c in cust.columns if c.startswith("consent_")]
    assert seeded["missing_consent_all"] == set(cust.loc[cust[consent_cols].isna().all(axis=1), "customer_id"])

    reach = (
        (cust["consent_email"].fillna(False) & cust["valid_email"])
        | (cust["consent_sms"].fillna(False) & cust["valid_phone"])
        | (cust["consent_push"].fillna(False) & cust["valid_push"])
        | (cust["consent_direct_mail"].fillna(False) & cust["valid_address"])
        | (cust["consent_outbound_call"].fillna(False) & cust["valid_phone"])
    )
    assert seeded["unreachable"] == set(cust.loc[~reach, "customer_id"])
    n = len(cust)
    assert 0.01 * n < len(seeded["invalid_email"]) < 0.06 * n
    assert 0.01 * n < cust[consent_cols].isna().mean().mean() * n  # some consent is unknown


def test_personal_data_is_plausible_and_fictional(con: duckdb.DuckDBPyConnection) -> None:
    cust = con.execute("SELECT first_name, email, postcode, street_address FROM customers").df()
    assert cust["first_name"].notna().all()
    valid = cust["email"][cust["email"].str.contains("@", na=False)]
    assert valid.str.rsplit("@", n=1).str[-1].str.contains("example").all()  # reserved example domains only
    assert cust["postcode"].str.match(r"^\d{4} [A-Z]{2}$").all()


# ---------------------------------------------------------------------------- stepping
def test_contacts_raise_fatigue_and_lower_the_next_contacts_effect() -> None:
    world = World.create(300, seed=8)
    for day in range(3):
        world.advance(day)
    ids = world.population.customer_id[:100]
    before = world.true_probabilities(ids)
    fatigue_before = world.population.fatigue[:100].copy()
    decisions = pd.DataFrame(
        {
            "decision_id": [f"t-{i}" for i in ids],
            "customer_id": ids,
            "offer_id": "sports_gear",
            "channel": "sms",
            "contacted": np.arange(len(ids)) < 60,
        }
    )
    world.respond(decisions, 3)
    after = world.true_probabilities(ids)
    fatigue = world.population.fatigue[:100]
    assert (fatigue[:60] >= fatigue_before[:60] + 1).all()
    np.testing.assert_array_equal(fatigue[60:], fatigue_before[60:])

    def contact_effect(truth: pd.DataFrame) -> np.ndarray:
        """Logit shift of contact on SMS (per customer x offer); engagement changes cancel out."""
        sms = truth[truth["channel"] == "sms"]
        logit = lambda p: np.log(p / (1 - p))  # noqa: E731
        return (logit(sms["p_contact"]) - logit(sms["p_control"])).to_numpy().reshape(len(ids), -1)

    assert (contact_effect(after)[:60] < contact_effect(before)[:60]).all()
    np.testing.assert_allclose(contact_effect(after)[60:], contact_effect(before)[60:])


def test_draws_are_paired_across_policies() -> None:
    """The same customer, day and action get the same outcome whatever else the policy does."""
    a, b = World.create(400, seed=4), World.create(400, seed=4)
    base = {"decision_id": ["x"], "customer_id": [7], "offer_id": ["beauty_box"], "channel": ["email"], "contacted": [True]}
    others = pd.DataFrame(
        {"decision_id": [f"o{i}" for i in range(50, 150)], "customer_id": range(50, 150),
         "offer_id": "fashion_sale", "channel": "web", "contacted": True}
    )
    out_a = a.respond(pd.DataFrame(base), 2)
    out_b = b.respond(pd.concat([others, pd.DataFrame(base)], ignore_index=True), 2)
    ra = out_a.responses.sort_values("outcome").reset_index(drop=True)
    rb = out_b.responses[out_b.responses["decision_id"] == "x"].sort_values("outcome").reset_index(drop=True)
    pd.testing.assert_frame_equal(ra, rb)
    assert out_a.truth.iloc[0]["p_contact"] == out_b.truth.set_index("decision_id").loc["x", "p_contact"]


def test_advance_returns_contract_frames_and_moves_the_clock() -> None:
    world = World.create(500, seed=2)
    activity = world.advance()
    assert world.day == 1
    assert list(activity.interactions.columns) == list(TABLES["interactions"].column_names)
    assert list(activity.transactions.columns) == list(TABLES["transactions"].column_names)
    assert list(activity.life_events.columns) == list(TABLES["life_events"].column_names)
    assert len(activity.interactions) > 50
    joined = []
    for _ in range(40):
        a = world.advance()
        if not a.customers.empty:
            joined.append(a.customers)
    assert joined and list(joined[0].columns) == list(TABLES["customers"].column_names)


def test_load_rebuilds_the_same_world(generated) -> None:
    world, path, _ = generated
    con = duckdb.connect(str(path), read_only=True)
    try:
        loaded = World.load(con)
    finally:
        con.close()
    assert loaded.day == world.day == DAYS
    ids = world.population.customer_id[::37]
    pd.testing.assert_frame_equal(loaded.true_probabilities(ids), world.true_probabilities(ids))


def test_load_without_a_world_says_what_to_run(tmp_path: Path) -> None:
    con = connect(tmp_path / "empty.duckdb")
    try:
        with pytest.raises(NotFoundError, match="nextbest data generate"):
            World.load(con)
    finally:
        con.close()


# ---------------------------------------------------------------------------- bad input
_DECISION = {"decision_id": ["d"], "customer_id": [1], "offer_id": ["beauty_box"], "channel": ["email"], "contacted": [True]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "contacted"}, r"decisions: missing column\(s\) \['contacted'\]"),
        ({"offer_id": ["no_such_offer"]}, r"decisions.offer_id: unknown offer\(s\) \['no_such_offer'\]"),
        ({"channel": ["pigeon"]}, r"decisions.channel: unknown or missing channel\(s\) \['pigeon'\]"),
        ({"customer_id": [999_999]}, r"decisions.customer_id: unknown customer id"),
    ],
)
def test_respond_rejects_bad_decisions(change: dict, message: str) -> None:
    world = World.create(50, seed=1)
    frame = pd.DataFrame(_DECISION)
    if "drop" in change:
        frame = frame.drop(columns=change["drop"])
    else:
        for k, v in change.items():
            frame[k] = v
    with pytest.raises(BadInputError, match=message):
        world.respond(frame, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_customers": 0}, "n_customers must be at least 1"), ({"n_customers": 10, "seed": -1}, "seed must be a non-negative")],
)
def test_create_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        World.create(**kwargs)


def test_write_history_refuses_to_mix_worlds(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    try:
        World.create(30, seed=1).write_history(con, 2)
        with pytest.raises(BadInputError, match="--replace"):
            World.create(30, seed=2).write_history(con, 2)
        with pytest.raises(BadInputError, match="days must be at least 1"):
            World.create(30, seed=2).write_history(con, 0, replace=True)
        World.create(30, seed=2).write_history(con, 2, replace=True)
        assert con.execute("SELECT count(*) FROM ground_truth.seeded_defects WHERE kind = 'params'").fetchone()[0] == 1
    finally:
        con.close()


def test_fixture_size() -> None:
    assert (N_CUSTOMERS, DAYS, SEED) == (1500, 60, 42)
