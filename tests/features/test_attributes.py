"""Declared attributes as features: registry entries, SQL values, point in time, personal ones absent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd
import pytest

from nextbest.config import Attribute, NextbestConfig
from nextbest.errors import BadInputError
from nextbest.features.pipeline import compute_sql_features
from nextbest.features.registry import customer_features, feature_defs

from .conftest import T, feature_config

ATTRIBUTES = (
    Attribute(name="loyalty_tier", type="category"),
    Attribute(name="crm_score", type="number"),
    Attribute(name="is_vip", type="boolean"),
    Attribute(name="contract_start", type="date"),
    Attribute(name="partner_birth_date", type="date", personal=True),
)


@pytest.fixture
def declared(config: NextbestConfig) -> NextbestConfig:
    return feature_config(config, attributes=ATTRIBUTES)


def test_registry_has_each_non_personal_attribute(declared: NextbestConfig) -> None:
    defs = {d.name: d for d in customer_features(feature_defs(declared)) if d.group == "attributes"}
    assert {n: (d.dtype, d.default) for n, d in defs.items()} == {
        "loyalty_tier": ("category", "unknown"), "crm_score": ("float", None), "is_vip": ("bool", None),
        "contract_start": ("float", None),
    }


def test_sql_features_read_the_attributes(
    declared: NextbestConfig, con: duckdb.DuckDBPyConnection, add: Callable[[str, list[dict[str, Any]]], None]
) -> None:
    add("customers", [{"customer_id": 1}, {"customer_id": 2}])
    # The first build adds the declared columns to customers.
    assert "loyalty_tier" in compute_sql_features(con, T, declared).columns
    con.execute(
        "UPDATE customers SET loyalty_tier = 'gold', crm_score = 712.5, is_vip = true, "
        "contract_start = DATE '2024-06-20', partner_birth_date = DATE '1980-01-01' WHERE customer_id = 1"
    )
    frame = compute_sql_features(con, T, declared).set_index("customer_id")
    assert "partner_birth_date" not in frame.columns
    one, two = frame.loc[1], frame.loc[2]
    assert (one["loyalty_tier"], one["crm_score"], bool(one["is_vip"])) == ("gold", 712.5, True)
    assert one["contract_start"] == (T - pd.Timestamp(dt.date(2024, 6, 20))).days  # 10 days before T
    assert two["loyalty_tier"] == "unknown" and pd.isna(two["crm_score"]) and pd.isna(two["is_vip"])
    assert pd.isna(two["contract_start"])


def test_a_read_only_connection_names_the_fix_for_a_missing_column(
    declared: NextbestConfig, con: duckdb.DuckDBPyConnection, tmp_path: Any,
    add: Callable[[str, list[dict[str, Any]]], None],
) -> None:
    add("customers", [{"customer_id": 1}])
    con.close()
    reader = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        with pytest.raises(BadInputError, match="Fix: run `nextbest features build` or `nextbest data import` once"):
            compute_sql_features(reader, T, declared)
    finally:
        reader.close()
