"""Durable, idempotent feedback against a real warehouse file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from nextbest.errors import NotFoundError
from nextbest.serving.connections import warehouse_connection
from nextbest.serving.decision_log import DecisionWriter
from nextbest.serving.feedback import record_feedback
from nextbest.warehouse.db import connect

from tests.serving.test_decision_log import rows

WHEN = dt.datetime(2024, 5, 2, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = connect(path)
    con.register("r", rows("d1", "d2"))
    con.execute("INSERT INTO decisions BY NAME SELECT * FROM r")
    con.close()
    return path


def responses(path: Path) -> list[tuple[object, ...]]:
    with warehouse_connection(path) as con:
        return con.execute("SELECT decision_id, ts, outcome, revenue FROM responses ORDER BY 1, 3").fetchall()


def test_feedback_is_stored_once_in_utc(warehouse: Path) -> None:
    first = record_feedback(warehouse, decision_id="d1", outcome="conversion", ts=WHEN, revenue=42.0)
    again = record_feedback(warehouse, decision_id="d1", outcome="conversion", ts=WHEN, revenue=42.0)
    assert first.created and not again.created
    assert first.customer_id == 1
    assert responses(warehouse) == [("d1", dt.datetime(2024, 5, 2, 16, 30), "conversion", 42.0)]


def test_other_outcomes_of_the_same_decision_are_kept(warehouse: Path) -> None:
    record_feedback(warehouse, decision_id="d2", outcome="open", ts=WHEN, revenue=None)
    record_feedback(warehouse, decision_id="d2", outcome="click", ts=WHEN, revenue=None)
    assert [r[2] for r in responses(warehouse)] == ["click", "open"]


def test_unknown_decision_is_not_found(warehouse: Path) -> None:
    with pytest.raises(NotFoundError, match="decision_id 'nope' is unknown: send the decision_id returned by /rank"):
        record_feedback(warehouse, decision_id="nope", outcome="click", ts=WHEN, revenue=None)
    assert responses(warehouse) == []


def test_a_decision_still_queued_is_flushed_first(warehouse: Path) -> None:
    writer = DecisionWriter(warehouse, interval_s=60).start()
    writer.submit(rows("queued"))
    result = record_feedback(warehouse, decision_id="queued", outcome="click", ts=WHEN, revenue=None, writer=writer)
    assert result.created
    assert responses(warehouse)[0][0] == "queued"
    writer.close()
