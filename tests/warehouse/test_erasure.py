"""Right to be forgotten: every customer-keyed table, registered stores, audit without personal data."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import nextbest.live.erasure  # noqa: F401 - registers the live store's eraser, as the CLI does
from nextbest.warehouse.db import connect
from nextbest.warehouse.erasure import (
    customer_tables,
    decision_tables,
    forget,
    register_eraser,
    registered_erasers,
    subject_hash,
    unregister_eraser,
)

from nextbest.errors import NotFoundError
from nextbest.workspace import Workspace


@pytest.fixture
def populated(con: duckdb.DuckDBPyConnection, workspace: Workspace) -> Workspace:
    """The base fixture plus tables other teams add later, in their own schemas."""
    con.execute(
        """
        INSERT INTO decisions (decision_id, customer_id, ts, contacted) VALUES ('d2', 2, TIMESTAMP '2024-03-02', true);
        INSERT INTO responses VALUES ('d2', TIMESTAMP '2024-03-03', 'click', NULL);
        INSERT INTO life_events VALUES (1, TIMESTAMP '2024-01-05', 'moved', NULL);
        CREATE SCHEMA features;
        CREATE TABLE features.customer_snapshot (as_of TIMESTAMP, customer_id BIGINT, recency_days DOUBLE);
        INSERT INTO features.customer_snapshot VALUES ('2024-03-01', 1, 3), ('2024-04-01', 1, 5), ('2024-04-01', 2, 9);
        CREATE SCHEMA ground_truth;
        CREATE TABLE ground_truth.decision_truth (decision_id VARCHAR, customer_id BIGINT, p_contact DOUBLE);
        INSERT INTO ground_truth.decision_truth VALUES ('d1', 1, 0.1), ('d2', 2, 0.2);
        CREATE TABLE ground_truth.labels (decision_id VARCHAR, label INTEGER);
        INSERT INTO ground_truth.labels VALUES ('d1', 1), ('d2', 0);
        CREATE VIEW features.latest AS SELECT * FROM features.customer_snapshot;
        """
    )
    con.close()  # forget opens its own short-lived connection
    return workspace


@pytest.fixture
def parquet_store(workspace: Workspace):
    """A real store outside DuckDB: customer rows in a parquet file, with its eraser registered."""
    path = workspace.artifacts_dir / "snapshots.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"customer_id": [1, 1, 2], "score": [0.1, 0.2, 0.3]}).to_parquet(path)

    def erase(ws: Workspace, customer_id: int) -> int:
        frame = pd.read_parquet(path)
        keep = frame[frame["customer_id"] != customer_id]
        keep.to_parquet(path)
        return len(frame) - len(keep)

    register_eraser("test_parquet", erase)
    yield path
    unregister_eraser("test_parquet")


def test_discovers_customer_and_decision_keyed_tables(populated: Workspace) -> None:
    con = connect(populated.warehouse_path)
    tables = {f"{s}.{t}" for s, t, _ in customer_tables(con)}
    assert {
        "main.customers",
        "main.interactions",
        "features.customer_snapshot",
        "ground_truth.decision_truth",
    } <= tables
    assert "features.latest" not in tables  # views are not erased (their base tables are)
    assert {f"{s}.{t}" for s, t in decision_tables(con)} == {"main.responses", "ground_truth.labels"}
    con.close()


def _without_customer_1(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows that do not belong to customer 1 (by customer_id or via decision d1)."""
    out = {}
    for schema, table in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    ).fetchall():
        columns = {r[0] for r in con.execute(f"DESCRIBE {schema}.{table}").fetchall()}
        keep = (
            "customer_id IS DISTINCT FROM 1"
            if "customer_id" in columns
            else ("decision_id <> 'd1'" if "decision_id" in columns else "true")
        )
        out[f"{schema}.{table}"] = con.execute(f"SELECT * FROM {schema}.{table} WHERE {keep} ORDER BY ALL").fetchall()
    return out


def test_forget_removes_customer_everywhere(populated: Workspace, parquet_store: Path, snapshot) -> None:
    con = connect(populated.warehouse_path)
    expected = _without_customer_1(con)
    con.close()
    result = forget(populated, 1)
    assert result.tables == {
        "features.customer_snapshot": 2,
        "ground_truth.decision_truth": 1,
        "ground_truth.labels": 1,
        "main.customers": 1,
        "main.decisions": 1,
        "main.interactions": 1,
        "main.life_events": 1,
        "main.responses": 1,
        "main.transactions": 1,
    }
    assert result.stores == {"test_parquet": 2, "live_store": 0}  # the live store had nothing of customer 1
    con = connect(populated.warehouse_path, read_only=True)
    assert snapshot(con) == expected  # customer 1 gone from every table, everything else untouched
    con.close()
    assert pd.read_parquet(parquet_store)["customer_id"].tolist() == [2]


def test_audit_line_has_hash_and_counts_but_no_id_or_personal_data(populated: Workspace) -> None:
    forget(populated, 2)
    lines = populated.audit_log.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == {"ts", "event", "subject", "tables", "stores", "total"}
    assert record["subject"] == subject_hash(populated, 2) != subject_hash(populated, 1)
    assert record["tables"]["main.customers"] == 1 and record["total"] == sum(record["tables"].values())
    text = lines[0]
    for personal in ("bob@example.com", "bob", '"2"', ": 2,"):
        assert personal not in text
    assert "customer_id" not in text
    # The key that makes the hash unguessable stays private to the workspace.
    key = populated.root / ".audit-key"
    assert key.stat().st_mode & 0o077 == 0


def test_unknown_id_is_not_found_and_changes_nothing(populated: Workspace, snapshot) -> None:
    con = connect(populated.warehouse_path, read_only=True)
    before = snapshot(con)
    con.close()
    with pytest.raises(NotFoundError, match="customer_id 404 is not in the warehouse"):
        forget(populated, 404)
    con = connect(populated.warehouse_path, read_only=True)
    assert snapshot(con) == before
    con.close()
    assert not populated.audit_log.exists()


def test_failing_store_rolls_back_the_warehouse(populated: Workspace, snapshot) -> None:
    def broken(ws: Workspace, customer_id: int) -> int:
        raise OSError("store offline")

    register_eraser("broken", broken)
    try:
        with pytest.raises(OSError, match="store offline"):
            forget(populated, 1)
    finally:
        unregister_eraser("broken")
    con = connect(populated.warehouse_path, read_only=True)
    assert con.execute("SELECT count(*) FROM customers WHERE customer_id = 1").fetchone()[0] == 1
    con.close()
    assert not populated.audit_log.exists()


def test_registry_is_read_only_and_replaceable() -> None:
    register_eraser("x", lambda ws, cid: 0)
    register_eraser("x", lambda ws, cid: 1)
    try:
        assert registered_erasers()["x"](None, 1) == 1  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            registered_erasers()["y"] = lambda ws, cid: 0  # type: ignore[index]
    finally:
        unregister_eraser("x")
    assert "x" not in registered_erasers()
