"""Fixtures for the warehouse tests: a workspace whose warehouse holds a few known rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from nextbest.warehouse.db import connect

from nextbest.config import NextbestConfig
from nextbest.workspace import Workspace


@pytest.fixture
def config(workspace: Workspace) -> NextbestConfig:
    return workspace.config()


@pytest.fixture
def con(workspace: Workspace) -> Iterator[duckdb.DuckDBPyConnection]:
    """Warehouse with customers 1-3, one order, one decision with an open response."""
    con = connect(workspace.warehouse_path)
    con.execute(
        """
        INSERT INTO customers (customer_id, gender, email, phone, consent_email, valid_email) VALUES
            (1, 'f', 'ann@example.com', '+31612345678', true, true),
            (2, 'm', 'bob@example.com', NULL, false, true),
            (3, NULL, NULL, NULL, NULL, NULL);
        INSERT INTO transactions VALUES (1, TIMESTAMP '2024-03-01 10:00', 'o1', 'shoes', 40.0, 12.0);
        INSERT INTO interactions VALUES (1, TIMESTAMP '2024-03-01 09:00', 'web.view.category.shoes', NULL, NULL, NULL);
        INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, arm, experiment, contacted)
            VALUES ('d1', 1, TIMESTAMP '2024-03-02 08:00', 'fashion_sale', 'email', 'random', 'historical', true);
        INSERT INTO responses VALUES ('d1', TIMESTAMP '2024-03-02 12:00', 'open', NULL);
        """
    )
    yield con
    con.close()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write(name, text)``: a file under tmp_path with ``text`` (surrounding blank lines stripped)."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text.strip() + "\n")
        return path

    return _write


@pytest.fixture
def snapshot() -> Callable[[duckdb.DuckDBPyConnection], dict[str, list[tuple[object, ...]]]]:
    """``snapshot(con)``: full, ordered content of every base table in every schema."""

    def _snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
        names = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_catalog = current_database()"
        ).fetchall()
        return {f"{s}.{t}": con.execute(f'SELECT * FROM "{s}"."{t}" ORDER BY ALL').fetchall() for s, t in names}

    return _snapshot


@pytest.fixture(scope="session")
def world_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse holding a small generated world (800 customers, 60 days of history); do not modify it."""
    world = pytest.importorskip("nextbest.world")
    from nextbest.config import load_config

    path = tmp_path_factory.mktemp("world") / "warehouse.duckdb"
    con = connect(path)
    w = world.World.create(n_customers=800, seed=7, start=dt.date(2024, 1, 1), config=load_config())
    w.write_history(con, days=60)
    con.close()
    return path
