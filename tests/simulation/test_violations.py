"""The independent audit of the decision log against the contact policy (real DuckDB files)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.simulation.violations import KINDS, count_violations
from nextbest.warehouse.db import connect

CONFIG = load_config()
POLICY = CONFIG.policy.contact
DAY = dt.datetime(2024, 6, 10, 10)
START, END = dt.datetime(2024, 6, 1), dt.datetime(2024, 7, 1)


def _customers(**overrides: object) -> pd.DataFrame:
    row: dict[str, object] = {"customer_id": 1}
    for ch in CONFIG.channels.channels:
        if ch.consent_field:
            row[ch.consent_field] = True
        if ch.validity_field:
            row[ch.validity_field] = True
    row.update(overrides)
    return pd.DataFrame([row])


def _decision(i: int, ts: dt.datetime, offer: str = "beauty_box", channel: str = "email", contacted: bool = True) -> dict[str, object]:
    return {"decision_id": f"d{i}", "customer_id": 1, "ts": ts, "offer_id": offer, "channel": channel,
            "arm": "champion", "experiment": "sim", "propensity": 1.0, "model_version": "m", "score": 1.0,
            "contacted": contacted}


def _audit(tmp_path: Path, customers: pd.DataFrame, decisions: list[dict[str, object]],
           responses: list[tuple[str, dt.datetime, str]] = ()) -> dict[str, int]:
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        for table, frame in (
            ("customers", customers),
            ("decisions", pd.DataFrame(decisions)),
            ("responses", pd.DataFrame(responses, columns=["decision_id", "ts", "outcome"])),
        ):
            if len(frame):
                con.register("_rows", frame)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
                con.unregister("_rows")
        return count_violations(con, CONFIG, START, END)
    finally:
        con.close()


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


CASES = [
    ("clean: spaced contacts within every cap", _customers(),
     [_decision(0, DAY - days(8)), _decision(1, DAY, "sports_gear")], [], {}),
    ("no consent on the channel", _customers(consent_email=False), [_decision(0, DAY)], [], {"no_consent": 1}),
    ("consent withdrawn only after the contact is fine", _customers(consent_email=False),
     [_decision(0, DAY)], [("d0", DAY + days(1), "unsubscribe")], {}),
    ("invalid e-mail address", _customers(valid_email=False), [_decision(0, DAY)], [], {"invalid_contact": 1}),
    ("more contacts than max_contacts in the window", _customers(),
     [_decision(i, DAY - days(i), o) for i, o in enumerate(["beauty_box", "sports_gear", "book_club"][: POLICY.max_contacts + 1])],
     [], {"contact_cap": 1}),
    ("two SMS within the window", _customers(),
     [_decision(0, DAY - days(2), "sports_gear", "sms"), _decision(1, DAY, "beauty_box", "sms")], [], {"channel_cap": 1}),
    ("same offer again within the cool-down", _customers(),
     [_decision(0, DAY - days(POLICY.window_days + 1)), _decision(1, DAY)], [], {"offer_cooldown": 1}),
    ("contact after a complaint", _customers(),
     [_decision(0, DAY - days(20)), _decision(1, DAY, "sports_gear")], [("d0", DAY - days(19), "complaint")],
     {"complaint": 1}),
    ("contact after an unsubscribe", _customers(),
     [_decision(0, DAY - days(20), "beauty_box", "push"), _decision(1, DAY, "sports_gear")],
     [("d0", DAY - days(19), "unsubscribe")], {"negative_response": 1}),
    ("web banners are not personal contacts", _customers(),
     [_decision(i, DAY - dt.timedelta(hours=i), "beauty_box", "web") for i in range(5)], [], {}),
    ("control decisions are not contacts", _customers(consent_email=False),
     [_decision(0, DAY, contacted=False)], [], {}),
]


@pytest.mark.parametrize(("case", "customers", "decisions", "responses", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_violation_is_counted(
    tmp_path: Path, case: str, customers: pd.DataFrame, decisions: list[dict[str, object]],
    responses: list[tuple[str, dt.datetime, str]], expected: dict[str, int],
) -> None:
    counts = _audit(tmp_path, customers, decisions, responses)
    assert set(counts) == set(KINDS)
    assert {k: v for k, v in counts.items() if v} == expected


def test_daily_capacity_excess_is_counted(tmp_path: Path) -> None:
    capacity = CONFIG.channel("outbound_call").daily_capacity
    assert capacity is not None
    customers = pd.concat([_customers(customer_id=i) for i in range(capacity + 3)], ignore_index=True)
    decisions = [
        {**_decision(i, DAY, "reading_glasses", "outbound_call"), "customer_id": i} for i in range(capacity + 3)
    ]
    assert _audit(tmp_path, customers, decisions)["channel_capacity"] == 3
