"""Point-in-time correctness: data at or after the as-of time never changes a feature,
data before it does."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from nextbest.features.fitted import FeatureModels
from nextbest.features.pipeline import build_features, build_offer_history, fit_feature_models
from nextbest.features.registry import feature_defs
from nextbest.warehouse.db import connect

from nextbest.config import NextbestConfig, load_config

from .conftest import T, feature_config, random_warehouse

# Edits at or after T, one batch per table: add, change and delete rows.
FUTURE_EDITS = {
    "interactions": [
        f"INSERT INTO interactions (customer_id, ts, type) SELECT customer_id, TIMESTAMP '{T}', 'store.visit' FROM customers",
        f"UPDATE interactions SET type = 'app.open' WHERE ts >= TIMESTAMP '{T}'",
        f"DELETE FROM interactions WHERE ts >= TIMESTAMP '{T}' + INTERVAL 3 DAY",
    ],
    "transactions": [
        f"INSERT INTO transactions SELECT customer_id, TIMESTAMP '{T}', 'new' || customer_id, 'home', 999, 99 FROM customers",
        f"UPDATE transactions SET amount = amount * 10, margin = 0 WHERE ts >= TIMESTAMP '{T}'",
        f"DELETE FROM transactions WHERE ts > TIMESTAMP '{T}' + INTERVAL 10 DAY",
    ],
    "life_events": [
        f"INSERT INTO life_events SELECT customer_id, TIMESTAMP '{T}', 'moved', DATE '{T.date()}' FROM customers",
        f"UPDATE life_events SET event_type = 'contract_end' WHERE ts >= TIMESTAMP '{T}'",
        f"DELETE FROM life_events WHERE ts > TIMESTAMP '{T}' + INTERVAL 1 DAY",
    ],
    "decisions": [
        f"INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, contacted) "
        f"SELECT 'f' || customer_id, customer_id, TIMESTAMP '{T}', 'book_club', 'email', true FROM customers",
        f"UPDATE decisions SET offer_id = 'book_club', contacted = true WHERE ts >= TIMESTAMP '{T}'",
    ],
    "responses": [
        # Answers, dated at or after T, to decisions made before T.
        f"INSERT INTO responses SELECT decision_id, TIMESTAMP '{T}' + INTERVAL 1 HOUR, 'visit', 0 FROM decisions "
        f"WHERE ts < TIMESTAMP '{T}'",
        f"UPDATE responses SET outcome = 'unsubscribe' WHERE ts >= TIMESTAMP '{T}' AND outcome = 'open'",
        f"DELETE FROM responses WHERE ts >= TIMESTAMP '{T}' AND outcome = 'click'",
    ],
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NextbestConfig, FeatureModels]:
    """A random warehouse file and models fitted on it at T, shared by the tests (each edits a copy)."""
    path = tmp_path_factory.mktemp("leakage") / "warehouse.duckdb"
    config = feature_config(load_config(None), clv_min_customers=20, basket_clusters=3)
    con = connect(path)
    random_warehouse(con)
    models = fit_feature_models(con, T, config)
    con.close()
    return path, config, models


@pytest.fixture
def world(template: tuple[Path, NextbestConfig, FeatureModels], tmp_path: Path,
          ) -> Iterator[tuple[duckdb.DuckDBPyConnection, NextbestConfig, FeatureModels]]:
    path, config, models = template
    shutil.copyfile(path, tmp_path / "warehouse.duckdb")
    con = connect(tmp_path / "warehouse.duckdb")
    yield con, config, models
    con.close()


def _build(con: duckdb.DuckDBPyConnection, config: NextbestConfig) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    models = fit_feature_models(con, T, config)
    return build_features(con, T, config, models=models), build_offer_history(con, T, config), models.version


def test_data_at_or_after_as_of_changes_nothing(
    world: tuple[duckdb.DuckDBPyConnection, NextbestConfig, FeatureModels],
) -> None:
    con, config, _ = world
    before, history_before, version_before = _build(con, config)
    assert (before["orders_total"] > 0).mean() > 0.5  # the fixture has history on both sides of T
    assert con.execute(f"SELECT count(*) FROM interactions WHERE ts >= TIMESTAMP '{T}'").fetchone()[0] > 0
    for statements in FUTURE_EDITS.values():
        for sql in statements:
            con.execute(sql)
    after, history_after, version_after = _build(con, config)
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(history_before, history_after)
    assert version_before == version_after  # refitted models are identical too


# Edits strictly before T, with a feature each must change (for customer 1).
PAST_EDITS = [
    ("interactions", f"INSERT INTO interactions (customer_id, ts, type) VALUES (1, TIMESTAMP '{T}' - INTERVAL 1 SECOND, "
                     "'store.visit')", ["interactions_7d", "store_interactions_7d", "engagement_score"]),
    ("transactions", f"INSERT INTO transactions VALUES (1, TIMESTAMP '{T}' - INTERVAL 1 HOUR, 'x1', 'garden', 500, 50)",
     ["recency_days", "frequency_365d", "monetary_365d", "spend_share_garden", "category_demand_garden"]),
    ("life_events", f"INSERT INTO life_events VALUES (1, TIMESTAMP '{T}' - INTERVAL 1 DAY, 'moved', NULL)",
     ["moved_recently"]),
    ("decisions", f"INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, contacted) VALUES "
                  f"('p1', 1, TIMESTAMP '{T}' - INTERVAL 2 DAY, 'book_club', 'email', true)", []),
    ("responses", f"UPDATE responses SET outcome = 'conversion' WHERE decision_id IN (SELECT decision_id FROM decisions "
                  f"WHERE customer_id = 1 AND contacted AND ts < TIMESTAMP '{T}' - INTERVAL 2 DAY ORDER BY ts DESC LIMIT 1) "
                  f"AND ts < TIMESTAMP '{T}'", []),
]


@pytest.mark.parametrize(("table", "sql", "changed"), PAST_EDITS, ids=[e[0] for e in PAST_EDITS])
def test_data_before_as_of_changes_the_affected_features(
    world: tuple[duckdb.DuckDBPyConnection, NextbestConfig, FeatureModels], table: str, sql: str, changed: list[str]
) -> None:
    con, config, models = world  # fixed models: the SQL features are what is tested
    before = build_features(con, T, config, models=models).set_index("customer_id")
    history_before = build_offer_history(con, T, config)
    if table == "responses":  # make sure customer 1 has an answerable contact before T
        con.execute("DELETE FROM responses WHERE decision_id IN (SELECT decision_id FROM decisions WHERE customer_id = 1)")
        con.execute(f"INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, contacted) VALUES "
                    f"('r1', 1, TIMESTAMP '{T}' - INTERVAL 5 DAY, 'beauty_box', 'sms', true)")
        con.execute(f"INSERT INTO responses VALUES ('r1', TIMESTAMP '{T}' - INTERVAL 4 DAY, 'complaint', 0)")
        before = build_features(con, T, config, models=models).set_index("customer_id")
        history_before = build_offer_history(con, T, config)
    con.execute(sql)
    after = build_features(con, T, config, models=models).set_index("customer_id")
    history_after = build_offer_history(con, T, config)
    for name in changed:
        assert before.at[1, name] != after.at[1, name], name
    others = after.index != 1
    # Nobody else is affected, but for the market-level demand, which is everyone's alike.
    market = [d.name for d in feature_defs(config) if d.group == "demand"]
    pd.testing.assert_frame_equal(before.loc[others].drop(columns=market), after.loc[others].drop(columns=market))
    assert (after[market].nunique() == 1).all()
    if table in ("decisions", "responses"):
        assert not history_before[history_before.customer_id == 1].reset_index(drop=True).equals(
            history_after[history_after.customer_id == 1].reset_index(drop=True))
    if table == "responses":
        row = history_after[(history_after.customer_id == 1) & (history_after.offer_id == "beauty_box")].iloc[0]
        assert bool(row.converted_before) and bool(row.responded_before)
