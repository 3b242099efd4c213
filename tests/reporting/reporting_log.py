"""A small decision log with a known truth, written to a real warehouse.

The log is written to a real warehouse file. Customers get a latent baseline
conversion probability; each (offer, channel) adds a known effect when the
customer is contacted, which is *negative* for young urban customers (the
"sleeping dogs" the uplift report must find). Decisions come from a historical
campaign whose 'random' arm picks uniformly among a customer's reachable
actions (so propensities differ between customers) and whose 'control' arm
records the action it would have sent. The truth is written to
``ground_truth.decision_truth`` like the synthetic world does.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig

START = dt.datetime(2024, 1, 1)


def write_log(
    con: duckdb.DuckDBPyConnection,
    config: NextbestConfig,
    *,
    n_customers: int = 3000,
    campaigns: int = 4,
    control_share: float = 0.3,
    seed: int = 7,
    experiment: str = "historical",
    arms: tuple[str, ...] = ("random",),
) -> pd.DataFrame:
    """Write customers, decisions, responses and their truth; return the truth per decision."""
    rng = np.random.default_rng(seed)
    n = n_customers
    ids = np.arange(1, n + 1, dtype=np.int64)
    age = rng.integers(18, 85, n)
    urbanity = rng.choice(["urban", "suburban", "rural"], n, p=[0.4, 0.35, 0.25])
    channels = [c.id for c in config.channels.channels]
    consent = {ch: rng.random(n) < 0.7 for ch in channels}
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "birth_date": [dt.date(2024 - int(a), 6, 1) for a in age],
            "gender": rng.choice(["f", "m", "x"], n, p=[0.5, 0.45, 0.05]),
            "region": rng.choice(["north", "south"], n),
            "urbanity": urbanity,
            "distance_to_store_km": rng.gamma(2.0, 8.0, n),
            "member_since": [dt.date(2020, 1, 1)] * n,
            **{f"consent_{ch}": consent[ch] for ch in channels if ch != "web"},
            "valid_email": True, "valid_phone": True, "valid_push": True, "valid_address": True,
        }
    )
    con.register("customers_df", customers)
    con.execute("INSERT INTO customers BY NAME SELECT * FROM customers_df")
    con.unregister("customers_df")

    # Some transactions so value tiers have something to rank.
    n_tx = n * 2
    tx = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n_tx),
            "ts": START - pd.to_timedelta(rng.integers(1, 360, n_tx), unit="D"),
            "order_id": [f"o{i}" for i in range(n_tx)],
            "category": "home",
            "amount": rng.gamma(2.0, 40.0, n_tx),
            "margin": 10.0,
        }
    )
    con.register("tx_df", tx)
    con.execute("INSERT INTO transactions BY NAME SELECT * FROM tx_df")
    con.unregister("tx_df")

    offers = config.offers.offers
    actions = [(o.id, ch, o.value) for o in offers for ch in o.channels]
    a_offer = np.array([a[0] for a in actions])
    a_channel = np.array([a[1] for a in actions])
    a_value = np.array([a[2] for a in actions], dtype=float)
    a_effect = rng.uniform(0.005, 0.06, len(actions))
    reachable = np.column_stack([np.ones(n, bool) if ch == "web" else consent[ch] for ch in a_channel])
    n_reach = reachable.sum(axis=1)
    sleeping = (age < 35) & (urbanity == "urban")
    # Sleeping dogs buy a lot on their own; a contact puts them off.
    baseline = rng.beta(2, 40, n) + np.where(sleeping, 0.12, 0.0)

    rows = []
    for k in range(campaigns):  # a handful of campaigns; everything inside is vectorised
        ts = START + dt.timedelta(days=21 * k)
        # Uniform pick among reachable actions: Gumbel-free trick via random keys.
        keys = np.where(reachable, rng.random((n, len(actions))), -1.0)
        pick = keys.argmax(axis=1)
        arm = np.where(rng.random(n) < control_share, "control", rng.choice(list(arms), n))
        rows.append(pd.DataFrame({"customer_id": ids, "k": k, "ts": ts, "action": pick, "arm": arm}))
    d = pd.concat(rows, ignore_index=True)
    d["decision_id"] = [f"d{k}-{c}" for k, c in zip(d["k"], d["customer_id"])]
    ci = d["customer_id"].to_numpy() - 1
    ai = d["action"].to_numpy()
    d["offer_id"], d["channel"] = a_offer[ai], a_channel[ai]
    d["experiment"] = experiment
    d["propensity"] = 1.0 / n_reach[ci]
    d["contacted"] = d["arm"] != "control"
    p_control = baseline[ci]
    effect = np.where(sleeping[ci], -0.10, a_effect[ai])
    p_contact = np.clip(p_control + effect, 0.0, 1.0)
    p = np.where(d["contacted"], p_contact, p_control)
    conv = rng.random(len(d)) < p
    value = a_value[ai]
    revenue = value * rng.gamma(4.0, 0.25, len(d))
    con.register("d_df", d.drop(columns=["k", "action"]))
    con.execute("INSERT INTO decisions BY NAME SELECT * FROM d_df")
    con.unregister("d_df")
    window = config.training.response_window_days
    delay = pd.to_timedelta(rng.uniform(0.1, window - 1, len(d)), unit="D")
    resp = pd.DataFrame(
        {"decision_id": d["decision_id"], "ts": d["ts"] + delay, "outcome": "conversion", "revenue": revenue}
    )[conv]
    opened = d["contacted"].to_numpy() & (rng.random(len(d)) < 0.3)
    opens = pd.DataFrame({"decision_id": d["decision_id"], "ts": d["ts"] + delay / 2, "outcome": "open",
                          "revenue": np.nan})[opened]
    complaints = d["contacted"].to_numpy() & (rng.random(len(d)) < 0.005)
    compl = pd.DataFrame({"decision_id": d["decision_id"], "ts": d["ts"] + delay / 3, "outcome": "complaint",
                          "revenue": np.nan})[complaints]
    # One late conversion outside the window: it must not count.
    late = pd.DataFrame({"decision_id": [d["decision_id"].iloc[0]], "ts": [d["ts"].iloc[0] + pd.Timedelta(days=window + 3)],
                         "outcome": ["visit"], "revenue": [np.nan]})
    all_resp = pd.concat([resp, opens, compl, late], ignore_index=True)
    con.register("r_df", all_resp)
    con.execute("INSERT INTO responses BY NAME SELECT * FROM r_df")
    con.unregister("r_df")
    truth = pd.DataFrame(
        {
            "decision_id": d["decision_id"], "customer_id": d["customer_id"], "arm": d["arm"],
            "p_contact": p_contact, "p_control": p_control, "value": value,
            "expected_revenue": p_contact * value,
        }
    )
    con.execute("CREATE SCHEMA IF NOT EXISTS ground_truth")
    con.register("t_df", truth[["decision_id", "customer_id", "p_contact", "p_control", "expected_revenue"]])
    con.execute("CREATE OR REPLACE TABLE ground_truth.decision_truth AS SELECT * FROM t_df")
    con.unregister("t_df")
    # A housekeeping row past the last campaign's window, so every campaign decision is mature.
    end = START + dt.timedelta(days=21 * campaigns + window + 1)
    con.execute("INSERT INTO decisions (decision_id, customer_id, ts, experiment, arm, contacted) "
                "VALUES ('end-marker', 1, ?, 'housekeeping', 'none', false)", [end])
    truth["sleeping"] = sleeping[ci]
    truth["age"] = age[ci]
    truth["urbanity"] = urbanity[ci]
    return truth
