"""Declared attributes end to end: import -> snapshot -> model -> rule -> segment -> forget.

One workspace (:mod:`tests.attributes_world`) built with the real CLI; personal
attributes must be stored and erased but never reach a snapshot, a model or MLflow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from nextbest.decisioning.ruleset import RuleSet
from nextbest.workspace import Workspace
from tests.attributes_world import (
    GOLD_OFFER,
    NICK_PREFIX,
    PARTNER_BIRTH,
    SEGMENT,
    AttributeWorld,
    run_cli,
)

# One xdist group with tests/serving/test_attributes.py: one worker builds the shared world once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("attribute_world")]

USED = ("loyalty_tier", "crm_score", "is_vip", "contract_start")
PERSONAL = ("nickname", "partner_birth_date")


def _snapshot(root: Path) -> pd.DataFrame:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT * FROM features.customer_snapshot WHERE as_of = (SELECT max(as_of) FROM features.customer_snapshot) "
            "ORDER BY customer_id"
        ).df()
    finally:
        con.close()


def test_snapshot_holds_each_attribute_under_its_name_and_no_personal_one(attribute_world: AttributeWorld) -> None:
    snap = _snapshot(attribute_world.root)
    assert set(USED) <= set(snap.columns)
    assert not set(PERSONAL) & set(snap.columns)
    as_of = pd.Timestamp(snap["as_of"].iloc[0])
    for row in snap.head(200).itertuples():
        given = attribute_world.values[row.customer_id]
        assert row.loyalty_tier == (given["loyalty_tier"] or "unknown")
        assert row.crm_score == pytest.approx(float(given["crm_score"]))
        assert (pd.isna(row.is_vip) and given["is_vip"] == "") or bool(row.is_vip) == (given["is_vip"] == "true")
        if given["contract_start"]:
            assert row.contract_start == pytest.approx((as_of - pd.Timestamp(given["contract_start"])).days)
        else:
            assert pd.isna(row.contract_start)
    con = duckdb.connect(str(attribute_world.root / "warehouse.duckdb"), read_only=True)
    try:
        types = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'customers'"
        ).fetchall())
    finally:
        con.close()
    assert [types[c] for c in (*USED, *PERSONAL)] == ["VARCHAR", "DOUBLE", "BOOLEAN", "DATE", "VARCHAR", "DATE"]


def test_model_splits_on_attributes_and_mlflow_never_sees_personal_ones(attribute_world: AttributeWorld) -> None:
    artifacts = attribute_world.root / "mlartifacts"
    lineage = [json.loads(p.read_text()) for p in artifacts.rglob("lineage.json")]
    assert lineage, "training logged no lineage"
    for doc in lineage:
        assert set(USED) <= set(doc["feature_columns"])
        assert not set(PERSONAL) & set(doc["feature_columns"])
    importance = pd.concat([pd.read_json(p) if p.suffix == ".json" else pd.read_csv(p)
                            for p in artifacts.rglob("feature_importance.*") if p.suffix in (".json", ".csv")])
    by_feature = importance.groupby("feature").sum(numeric_only=True).sum(axis=1)
    assert by_feature.get("loyalty_tier", 0) + by_feature.get("crm_score", 0) > 0, by_feature.sort_values().tail()
    # No personal attribute name or value anywhere MLflow wrote: artifacts, params, tags.
    needles = [n.encode() for n in (*PERSONAL, NICK_PREFIX, PARTNER_BIRTH.isoformat())]
    files = [p for p in artifacts.rglob("*") if p.is_file()] + [attribute_world.root / "mlflow.db"]
    for path in files:
        data = path.read_bytes()
        assert not [n for n in needles if n in data], path


def test_eligibility_rule_and_segment_read_attributes(attribute_world: AttributeWorld) -> None:
    ws = Workspace.resolve(attribute_world.root)
    snap = _snapshot(attribute_world.root)
    rules = RuleSet.from_config(ws.config())
    eligible = rules.eligibility[GOLD_OFFER].evaluate(snap)
    assert (eligible == (snap["loyalty_tier"] == "gold")).all()
    expected = int(((snap["loyalty_tier"] == "gold") & snap["is_vip"].fillna(False).astype(bool)
                    & (snap["contract_start"] >= 30)).sum())
    assert 0 < expected < len(snap)
    sizes = {s["name"]: s["size"] for s in json.loads(run_cli(attribute_world.root, "segment", "list", "--json").stdout)}
    assert sizes[SEGMENT] == expected
    # The CLI's ranking never proposes the gold offer to a customer outside the tier.
    silver = int(snap.loc[snap["loyalty_tier"] != "gold", "customer_id"].iloc[0])
    doc = json.loads(run_cli(attribute_world.root, "rank", "--customer-id", str(silver), "--top-k", "50",
                             "--json").stdout)
    assert doc["actions"] and GOLD_OFFER not in {a["offer_id"] for a in doc["actions"]}


def test_forget_erases_personal_attribute_values(attribute_world: AttributeWorld, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(attribute_world.root, root, ignore=shutil.ignore_patterns("*.log"))
    customer = 7
    run_cli(root, "data", "forget", "--customer-id", str(customer))
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        left = con.execute("SELECT count(*) FROM customers WHERE nickname = ?", [f"{NICK_PREFIX}{customer}"]).fetchone()
        others = con.execute("SELECT count(*) FROM customers WHERE nickname IS NOT NULL").fetchone()
        snap = con.execute("SELECT count(*) FROM features.customer_snapshot WHERE customer_id = ?", [customer]).fetchone()
    finally:
        con.close()
    assert left[0] == 0 and snap[0] == 0
    assert others[0] == len(attribute_world.values) - 1


def test_uplift_report_cuts_by_declared_attributes_but_never_personal_ones(
    attribute_world: AttributeWorld, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(attribute_world.root, root, ignore=shutil.ignore_patterns("*.log"))
    out = tmp_path / "uplift.html"
    run_cli(root, "report", "uplift", "--output", str(out))
    page = out.read_text()
    assert "Uplift by loyalty tier" in page
    assert NICK_PREFIX not in page and "nickname" not in page and "partner_birth_date" not in page
