"""``data sync``: live rows into a real DuckDB warehouse, once, incrementally; consent withdrawn."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from nextbest.live.register import record_outcomes, register_decisions
from nextbest.live.store import LiveStore
from nextbest.live.sync import sync
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

T0 = dt.datetime(2024, 6, 1, 10)


def decision(did: str, customer: int, channel: str = "email") -> dict[str, object]:
    return {"decision_id": did, "customer_id": customer, "ts": T0, "offer_id": "o1", "channel": channel,
            "arm": "champion", "experiment": "x", "propensity": 0.5, "model_version": "m/1", "score": 2.0,
            "contacted": True}


def test_sync_is_incremental_idempotent_and_withdraws_consent(store_url: str, tmp_path: Path) -> None:
    ws = Workspace.resolve(tmp_path / "ws")
    ws.init_config()
    con = connect(ws.warehouse_path)
    con.execute("INSERT INTO customers (customer_id, consent_email, consent_sms) VALUES (1, true, true), (2, true, true)")
    con.close()
    store = LiveStore(store_url, writer="test")
    register_decisions(store, pd.DataFrame([decision("d1", 1), decision("d2", 2, "sms")]))
    record_outcomes(store, pd.DataFrame([{"decision_id": "d2", "ts": T0, "outcome": "unsubscribe", "revenue": None}]))

    first = sync(ws, store)
    assert first.copied == {"decisions": 2, "outcomes": 1, "consent_changes": 1}
    assert first.consent_withdrawn == 1
    assert sync(ws, store).total == 0  # nothing twice

    register_decisions(store, pd.DataFrame([decision("d3", 1)]))
    assert sync(ws, store).copied == {"decisions": 1, "outcomes": 0, "consent_changes": 0}
    con = connect(ws.warehouse_path, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3
        assert con.execute("SELECT outcome FROM responses WHERE decision_id = 'd2'").fetchall() == [("unsubscribe",)]
        assert con.execute("SELECT customer_id, consent_sms, consent_email FROM customers ORDER BY 1").fetchall() == [
            (1, True, True), (2, False, True)]
    finally:
        con.close()
    store.close()
