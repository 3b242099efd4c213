"""``nextbest decide --engine spark`` writes the local engine's file, capacities included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.decisioning.decide_world import CAPACITY, CAPPED_CHANNEL, CUSTOMERS, DAY, build_world, write_lake
from nextbest.errors import NotFoundError
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]
DATE = DAY.isoformat()
#: An offer whose lifetime cap binds too (a capacity on offers rather than channels).
CAPPED_OFFER, OFFER_CAP = "home_makeover", 25


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    root = tmp_path_factory.mktemp("spark-decide")
    ws = build_world(root / "ws")
    offers_file = ws.config_dir / "offers.yaml"
    offers = yaml.safe_load(offers_file.read_text())
    for o in offers["offers"]:
        if o["id"] == CAPPED_OFFER:
            o["max_contacts"] = OFFER_CAP
    offers_file.write_text(yaml.safe_dump(offers, sort_keys=False))
    return ws, write_lake(ws, root / "lake")


def _decide(ws: Workspace, output: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "decide", "--date", DATE, "--output", str(output), *args],
                                catch_exceptions=True)
    assert result.exception is None, f"{result.output}\n{result.exception!r}"
    return json.loads(result.stdout)


def assert_same_file(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Identical rows: text and integers exactly, floats within 1e-9."""
    assert list(local.columns) == list(spark.columns) and len(local) == len(spark)
    for c in local.columns:
        if local[c].dtype.kind == "f":
            assert np.allclose(local[c].to_numpy(), spark[c].to_numpy(), rtol=0, atol=1e-9, equal_nan=True), c
        else:
            assert local[c].tolist() == spark[c].tolist(), c


@pytest.mark.parametrize("top_k, seed", [(1, 0), (3, 11)])
def test_spark_writes_the_local_engines_file(spark, world, tmp_path: Path, top_k: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    ws, lake = world
    args = ("--top-k", str(top_k), "--seed", str(seed), "--dry-run")
    local = _decide(ws, tmp_path / "local.parquet", *args)
    remote = _decide(ws, tmp_path / "spark.parquet", *args, "--engine", "spark", "--lake", str(lake))
    assert remote["engine"] == "spark" and remote["customers"] == local["customers"] == CUSTOMERS
    a, b = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "spark.parquet")
    assert_same_file(a, b)
    assert a["rank"].max() == top_k
    # Both capacities bind, so the driver's second pass decided something.
    top = a[a["rank"] == 1]
    assert (top["channel"] == CAPPED_CHANNEL).sum() == CAPACITY
    # The offer's cap counts every contact it ever had: yesterday's too.
    con = connect(ws.warehouse_path, read_only=True)
    before = con.execute("SELECT count(*) FROM decisions WHERE contacted AND offer_id = ?", [CAPPED_OFFER]).fetchone()[0]
    con.close()
    assert (top["offer_id"] == CAPPED_OFFER).sum() == OFFER_CAP - before > 0


def test_spark_registers_what_it_wrote(spark, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, lake = world
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy, ignore=shutil.ignore_patterns("*.log"))
    mine = Workspace.resolve(copy)
    summary = _decide(mine, tmp_path / "run.parquet", "--engine", "spark", "--lake", str(lake))
    assert summary["registered"] == CUSTOMERS
    from nextbest.live.store import LiveStore

    store = LiveStore.for_workspace(mine)
    try:
        logged, _ = store.logged_ids()
    finally:
        store.close()
    sent = pd.read_parquet(tmp_path / "run.parquet")
    assert set(sent["decision_id"]) <= logged and len(logged) == CUSTOMERS


def test_a_lake_without_features_is_named(spark, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, _ = world
    (tmp_path / "lake").mkdir()
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "decide", "--date", DATE, "--output",
                                      str(tmp_path / "x.parquet"), "--dry-run", "--engine", "spark", "--lake",
                                      str(tmp_path / "lake")])
    assert isinstance(result.exception, NotFoundError)
    assert "no feature snapshot in the lake" in str(result.exception) and "nextbest data export" in str(result.exception)
    assert not (tmp_path / "x.parquet").exists()
