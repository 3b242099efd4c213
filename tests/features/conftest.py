"""Fixtures for the feature tests: real DuckDB warehouses with hand-built rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from nextbest.warehouse.db import connect
from nextbest.warehouse.schema import TABLES

from nextbest.config import NextbestConfig, load_config

T = pd.Timestamp("2024-06-30")  # the as-of time of the hand-computed fixtures


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (missing columns null) into a contract table."""
    frame = pd.DataFrame(rows, columns=list(TABLES[table].column_names))
    con.register("_rows", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


@pytest.fixture
def config() -> NextbestConfig:
    return load_config(None)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    c = connect(tmp_path / "warehouse.duckdb")
    yield c
    c.close()


@pytest.fixture
def add(con: duckdb.DuckDBPyConnection) -> Callable[[str, list[dict[str, Any]]], None]:
    return lambda table, rows: insert(con, table, rows)


def feature_config(config: NextbestConfig, **changes: Any) -> NextbestConfig:
    """``config`` with some feature settings changed."""
    return config.model_copy(update={"features": config.features.model_copy(update=changes)})


def random_warehouse(con: duckdb.DuckDBPyConnection, n_customers: int = 300, days: int = 200,
                     end: str = "2024-07-31", seed: float = 0.42) -> None:
    """A reproducible random warehouse built in SQL: every table, every family, events on both sides of T."""
    con.execute(f"SELECT setseed({seed})")
    con.execute(f"""
        INSERT INTO customers (customer_id, birth_date, gender, region, urbanity, distance_to_store_km, member_since,
            consent_email, consent_sms, consent_push, consent_direct_mail, consent_outbound_call,
            valid_email, valid_phone, valid_push, valid_address, preferred_channel)
        SELECT i, DATE '1950-01-01' + CAST(floor(random() * 18000) AS INTEGER),
            ['f', 'm', 'x'][1 + CAST(floor(random() * 3) AS INTEGER)], 'r' || (i % 5),
            ['urban', 'suburban', 'rural'][1 + CAST(floor(random() * 3) AS INTEGER)], random() * 60,
            DATE '2023-01-01' + CAST(floor(random() * 300) AS INTEGER),
            random() < 0.7, random() < 0.4, random() < 0.5, random() < 0.6, random() < 0.2,
            random() < 0.9, random() < 0.9, random() < 0.5, random() < 0.95, 'email'
        FROM range(1, {n_customers} + 1) t(i)""")
    start = f"TIMESTAMP '{end}' - INTERVAL {days} DAY"
    con.execute(f"""
        INSERT INTO interactions (customer_id, ts, type, channel)
        SELECT 1 + CAST(floor(random() * {n_customers}) AS BIGINT),
            {start} + to_seconds(CAST(floor(random() * {days} * 86400) AS BIGINT)),
            ['web.view.category.shoes', 'web.view.category.home', 'web.search', 'app.open', 'email.open',
             'email.click', 'store.visit', 'service.call', 'social.review', 'email.newsletter_signup']
                [1 + CAST(floor(random() * 10) AS INTEGER)], NULL
        FROM range({n_customers * 30})""")
    con.execute(f"""
        INSERT INTO transactions (customer_id, ts, order_id, category, amount, margin)
        SELECT 1 + CAST(floor(random() * {n_customers}) AS BIGINT),
            {start} + to_seconds(CAST(floor(random() * {days} * 86400) AS BIGINT)), 'o' || i,
            ['home', 'shoes', 'garden', 'electronics', 'toys'][1 + CAST(floor(random() * 5) AS INTEGER)],
            round(10 + random() * 200, 2), round(random() * 40, 2)
        FROM range({n_customers * 3}) t(i)""")
    con.execute(f"""
        INSERT INTO life_events (customer_id, ts, event_type, event_date)
        SELECT 1 + CAST(floor(random() * {n_customers}) AS BIGINT), ts, ev,
            CAST(ts AS DATE) + CASE WHEN ev = 'contract_end' THEN 5 ELSE 0 END
        FROM (SELECT {start} + to_seconds(CAST(floor(random() * {days} * 86400) AS BIGINT)) AS ts,
                     ['moved', 'contract_end', 'newsletter_signup'][1 + CAST(floor(random() * 3) AS INTEGER)] AS ev
              FROM range({n_customers}))""")
    con.execute(f"""
        INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, arm, experiment, propensity, contacted)
        SELECT 'd' || i, 1 + CAST(floor(random() * {n_customers}) AS BIGINT),
            {start} + to_seconds(CAST(floor(random() * {days} * 86400) AS BIGINT)),
            ['welcome_tips', 'sports_gear', 'beauty_box'][1 + CAST(floor(random() * 3) AS INTEGER)],
            ['email', 'sms', 'push'][1 + CAST(floor(random() * 3) AS INTEGER)],
            'random', 'historical', 0.1, random() < 0.85
        FROM range({n_customers * 4}) t(i)""")
    con.execute("""
        INSERT INTO responses (decision_id, ts, outcome, revenue)
        SELECT decision_id, ts + to_seconds(CAST(floor(random() * 5 * 86400) AS BIGINT)),
            ['open', 'click', 'conversion', 'complaint'][1 + CAST(floor(random() * 4) AS INTEGER)], 50
        FROM decisions WHERE random() < 0.4""")
