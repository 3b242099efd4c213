"""Contact pressure has one definition: the training set counts it, and the engine serves it, alike."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from nextbest.config import load_config
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.synthetic import random_features
from nextbest.features.pressure import DAYS_SINCE_CONTACT, PRESSURE_HORIZON_DAYS, pressure_features
from nextbest.features.registry import model_features
from nextbest.training.dataset import build_training_set
from nextbest.warehouse.db import connect
from tests.decisioning.test_matrix_scoring import context_scorer, offer_history

T0 = dt.datetime(2024, 3, 1)
CUSTOMERS = 12


def generated_log(config, n_decisions: int, seed: int) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Decisions of a few customers over 70 days at millisecond-and-below times: contacted or held out,
    some without an offer, on every channel; several at the edges of the 7- and 30-day windows."""
    rng = np.random.default_rng(seed)
    channels = [c.id for c in config.channels.channels]
    offers = [o.id for o in config.offers.offers]
    micros = rng.integers(0, 70 * 86_400_000_000, n_decisions)
    ts = pd.to_datetime(T0) + pd.to_timedelta(micros, unit="us")
    customer = rng.integers(1, CUSTOMERS + 1, n_decisions)
    frame = pd.DataFrame(
        {
            "decision_id": [f"d{i}" for i in range(n_decisions)],
            "customer_id": customer,
            "ts": ts,
            "offer_id": np.where(rng.random(n_decisions) < 0.1, None, rng.choice(offers, n_decisions)),
            "channel": rng.choice(channels, n_decisions),
            "arm": "random",
            "experiment": "historical",
            "propensity": 0.1,
            "model_version": None,
            "score": None,
            "contacted": rng.random(n_decisions) < 0.75,
        }
    )
    # Exactly 7 and 30 days (and a microsecond either side) after earlier contacts of the same customer.
    first = frame[frame["contacted"] & frame["offer_id"].notna()].head(6)
    edges = []
    for k, row in enumerate(first.itertuples(index=False)):
        for j, delta in enumerate((dt.timedelta(days=7), dt.timedelta(days=30), dt.timedelta(days=7, microseconds=1),
                                   dt.timedelta(days=30, microseconds=-1))):
            edges.append(row._replace(decision_id=f"e{k}-{j}", ts=row.ts + delta))
    return pd.concat([frame, pd.DataFrame(edges, columns=frame.columns)], ignore_index=True)


def test_the_engine_serves_the_pressure_the_training_set_counts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """For every decision of a generated log, the pressure the engine feeds its scorer (counted from its
    contact history at the decision's time) equals the training-set statement's for that decision."""
    config = load_config(None)
    pressure = pressure_features(config)
    names = [f.name for f in pressure]
    seed = 0
    log = generated_log(config, 400, seed)
    con = connect(tmp_path / "w.duckdb")
    closing = log.iloc[:1].assign(decision_id="closing", ts=T0 + dt.timedelta(days=200))  # closes every response window
    con.register("log", pd.concat([log, closing], ignore_index=True))
    con.execute("INSERT INTO decisions BY NAME SELECT * FROM log")
    con.unregister("log")
    # The snapshot's own pressure is deliberately wrong: both sides must count it themselves.
    snapshot = random_features(config, CUSTOMERS, seed=seed).assign(**{n: 99 for n in names})
    snapshot.insert(0, "as_of", T0 - dt.timedelta(days=1))
    con.execute("CREATE SCHEMA features")
    con.register("snap", snapshot)
    con.execute("CREATE TABLE features.customer_snapshot AS SELECT * FROM snap")
    con.unregister("snap")

    features = tuple(f for f in model_features(config) if f in {"engagement_score", *names})
    training = build_training_set(con, config, features=features).frame.set_index("decision_id")
    labelled = log[log["decision_id"].isin(training.index)]
    assert len(labelled) > 300

    engine = DecisionEngine(config, {"champion": context_scorer()})
    frame = snapshot.drop(columns=["as_of"])
    recorded = ContactHistory.empty(config)  # the service's way: every contact recorded as it is made
    recorded.record(log)
    served: dict[str, list[float]] = {n: [] for n in names}
    fed: dict[str, list[float]] = {n: [] for n in names}
    # Every decision from the recorded history; every third (and every edge) through the warehouse load too.
    loads = labelled["decision_id"].str.startswith("e") | (np.arange(len(labelled)) % 3 == 0)
    for row, load in zip(labelled.itertuples(index=False), loads, strict=True):
        at = row.ts.to_pydatetime()
        customers = engine.prepare(frame[frame["customer_id"] == row.customer_id])
        values = engine.pressured(customers, recorded, at).pressure
        for n in names:
            fed[n].append(values[n][0])
        if load:
            loaded = ContactHistory.load(con, config, at, np.array([row.customer_id]))  # the batch's way
            again = engine.pressured(customers, loaded, at).pressure
            for n in names:
                served[n].append(again[n][0])
    expected = training.loc[labelled["decision_id"], names]
    for n in names:
        np.testing.assert_array_equal(np.array(fed[n]), expected[n].to_numpy(dtype=float), err_msg=n)
        np.testing.assert_array_equal(np.array(served[n]), expected[n].to_numpy(dtype=float)[loads.to_numpy()], err_msg=n)
    # Not vacuous: pressure took many values, and the window edges were met.
    assert expected["contacts_30d"].nunique() > 3 and (expected[DAYS_SINCE_CONTACT] < PRESSURE_HORIZON_DAYS).any()
    assert (expected[DAYS_SINCE_CONTACT] == PRESSURE_HORIZON_DAYS).any() and (expected["contacts_7d_email"] > 0).any()

    # And the scorer reads them: candidate rows carry the served values, not the snapshot's 99s.
    at = labelled["ts"].max().to_pydatetime()
    loaded = ContactHistory.load(con, config, at)
    history_rows = offer_history(config, frame["customer_id"].to_numpy(), 3)
    scored = engine.score_candidates(frame, at, history=loaded, offer_history=history_rows)
    assert len(scored.frame)
    ids = scored.frame["customer_id"].to_numpy(dtype=np.int64)
    unique, row = np.unique(ids, return_inverse=True)
    truth = loaded.pressure(unique, at, pressure)
    for n in names:
        np.testing.assert_array_equal(scored.frame[n].to_numpy(dtype=float), truth[n][row], err_msg=n)
    assert (scored.frame["contacts_30d"] < 99).all()
    con.close()
