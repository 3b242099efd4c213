"""Contact history loaded set-based from a real DuckDB warehouse, and decision logging."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.log import DECISION_COLUMNS, write_decisions
from nextbest.warehouse.db import connect

AT = dt.datetime(2024, 6, 10, 9)


def _decision(i: int, customer: int, days_ago: float, offer: str, channel: str, contacted: bool = True) -> dict:
    return {
        "decision_id": f"d{i}", "customer_id": customer, "ts": AT - dt.timedelta(days=days_ago), "offer_id": offer,
        "channel": channel, "arm": "champion", "experiment": "t", "propensity": 1.0, "model_version": "m/1",
        "score": 1.0, "contacted": contacted,
    }


def test_load_counts_windows_cooldowns_suppressions_and_capacity(workspace, config) -> None:
    rows = pd.DataFrame(
        [
            _decision(1, 1, 1, "sports_gear", "email"),
            _decision(2, 1, 3, "beauty_box", "sms"),
            _decision(3, 1, 9, "book_club", "email"),  # outside the 7-day window, inside the 14-day cool-down
            _decision(4, 2, 2, "sports_gear", "email", contacted=False),  # control: not a contact
            _decision(5, 3, 0.1, "fashion_sale", "sms"),  # today: uses sms capacity
            _decision(6, 4, 2, "book_club", "web"),  # non-personal: no contact cap
            _decision(7, 5, 40, "book_club", "email"),
        ]
    )
    assert write_decisions(workspace.warehouse_path, rows) == len(rows)
    con = connect(workspace.warehouse_path)
    con.execute(
        "INSERT INTO responses VALUES ('d7', ?, 'complaint', NULL), ('d3', ?, 'unsubscribe', NULL)",
        [AT - dt.timedelta(days=39), AT - dt.timedelta(days=8)],
    )
    history = ContactHistory.load(con, config, AT, np.array([1, 2, 3, 4, 5]))
    con.close()
    view = history.view(np.array([1, 2, 3, 4, 5]), AT)
    channels = [c.id for c in config.channels.channels]
    offers = [o.id for o in config.offers.offers]
    assert view.contacts.tolist() == [2, 0, 1, 0, 0]
    assert view.contacts_by_channel[0, channels.index("sms")] == 1
    assert view.cooling[0, offers.index("book_club")] and view.cooling[0, offers.index("sports_gear")]
    assert not view.cooling[1].any() and not view.cooling[3].any()
    assert view.complaint.tolist() == [False, False, False, False, True]
    assert view.negative.tolist() == [True, False, False, False, False]
    sms_capacity = config.channel("sms").daily_capacity
    assert view.channel_remaining[channels.index("sms")] == sms_capacity - 1
    assert np.isinf(view.channel_remaining[channels.index("email")])


def test_record_updates_the_view_in_memory(config) -> None:
    history = ContactHistory.empty(config)
    made = pd.DataFrame([_decision(1, 7, 0, "sports_gear", "sms")])
    history.record(made)
    view = history.view(np.array([7, 8]), AT)
    assert view.contacts.tolist() == [1, 0]
    assert history.offer_totals["sports_gear"] == 1


def test_written_rows_match_the_decisions_table(workspace) -> None:
    rows = pd.DataFrame([_decision(1, 1, 0, "sports_gear", "email")])
    write_decisions(workspace.warehouse_path, rows)
    con = connect(workspace.warehouse_path, read_only=True)
    back = con.execute("SELECT * FROM decisions").df()
    con.close()
    assert tuple(back.columns) == DECISION_COLUMNS
    assert back.loc[0, "decision_id"] == "d1" and bool(back.loc[0, "contacted"])


def test_one_at_a_time_recording_sees_what_a_bulk_record_sees(config) -> None:
    """The customer index (sorted base + tail, merged past a threshold) loses and repeats nothing."""
    rng = np.random.default_rng(0)
    n = 5000  # past the tail's merge threshold
    made = pd.DataFrame(
        {
            "customer_id": rng.integers(1, 400, n),
            "ts": AT - pd.to_timedelta(rng.uniform(0, 20, n), unit="D"),
            "offer_id": rng.choice(["sports_gear", "book_club", "beauty_box"], n),
            "channel": rng.choice(["email", "sms", "web"], n),
            "contacted": True,
        }
    )
    bulk = ContactHistory.empty(config)
    bulk.record(made)
    single = ContactHistory.empty(config)
    for start in range(0, n, 7):
        single.record(made.iloc[start : start + 7])
    ids = np.array([5, 17, 399, 1000, 42])
    a, b = bulk.view(ids, AT), single.view(ids, AT)
    for field in ("contacts", "contacts_by_channel", "cooling", "offer_remaining", "channel_remaining"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.contacts[3] == 0 and a.contacts[:3].sum() > 0
    assert bulk.offer_totals == single.offer_totals and bulk.channel_days == single.channel_days


def test_recorded_negatives_suppress_only_their_customer(config) -> None:
    history = ContactHistory.empty(config)
    history.record_negative(np.array([3]), AT - dt.timedelta(days=1), "complaint")
    history.record_negative(np.array([4]), AT - dt.timedelta(days=1), "unsubscribe")
    view = history.view(np.array([4, 3, 5]), AT)
    assert view.complaint.tolist() == [False, True, False]
    assert view.negative.tolist() == [True, False, False]
