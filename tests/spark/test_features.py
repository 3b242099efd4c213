"""Feature snapshots on Spark equal DuckDB's: the composed statement transpiled, the fitted features on the driver."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from nextbest.features.fitted import FeatureModels
from nextbest.features.pipeline import build_features, build_offer_history, fit_and_build
from nextbest.spark.lake import as_of_file
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from tests.spark.conftest import WorldLake, run

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

TOLERANCE = 1e-9


def assert_same(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    """Equal columns, dtypes and values, floats within :data:`TOLERANCE`."""
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_exact=False,
                                  atol=TOLERANCE, rtol=0, obj=what)


def test_cli_build_on_spark_equals_duckdb(world_lake: WorldLake, spark: object, tmp_path: Path) -> None:
    # A copy: the build refits the feature models and rewrites the lake's snapshot as of T.
    shutil.copytree(world_lake.ws.root, tmp_path / "ws")
    shutil.copytree(world_lake.lake, tmp_path / "lake")
    ws, lake, when = Workspace.resolve(tmp_path / "ws"), tmp_path / "lake", world_lake.as_of
    out = run(ws, "features", "build", "--engine", "spark", "--lake", str(lake), "--as-of", str(when.date()),
              "--refit", "--output", str(tmp_path / "snap.parquet"))
    assert "fitted models" in out

    con = connect(ws.warehouse_path, read_only=True)
    try:
        want, models = fit_and_build(con, when, ws.config())
        want_hist = build_offer_history(con, when, ws.config())
    finally:
        con.close()
    snapshot = pd.read_parquet(as_of_file(lake, "features.customer_snapshot", when))
    assert (snapshot.pop("as_of") == when).all()
    assert_same(snapshot, want, "customer_snapshot")
    history = pd.read_parquet(as_of_file(lake, "features.offer_history", when))
    assert (history.pop("as_of") == when).all()
    assert len(want_hist) > 0
    assert_same(history, want_hist, "offer_history")
    manifest = pd.read_parquet(as_of_file(lake, "features.manifest", when))
    assert manifest["feature_set_version"].tolist() == [models.version]  # the same fitted models
    assert_same(pd.read_parquet(tmp_path / "snap.parquet").drop(columns="as_of"), want, "--output")


def test_one_customer_build_on_spark(world_lake: WorldLake, spark: object) -> None:
    from nextbest.spark.features import SparkEngine

    ws, when = world_lake.ws, world_lake.as_of
    config = ws.config()
    models = FeatureModels.latest(ws.artifacts_dir / "features", config)
    assert models is not None
    con = connect(ws.warehouse_path, read_only=True)
    try:
        full = build_features(con, when, config, models=models)
        customer = int(full["customer_id"].iloc[len(full) // 2])
        want = build_features(con, when, config, models=models, customer_ids=[customer])
        want_hist = build_offer_history(con, when, config, customer_ids=[customer])
    finally:
        con.close()
    engine = SparkEngine(spark, world_lake.lake)  # type: ignore[arg-type]
    got = build_features(engine, when, config, models=models, customer_ids=[customer])
    assert_same(got, want, "one customer")
    assert_same(got, full[full["customer_id"] == customer], "one customer vs the full build")
    assert_same(build_offer_history(engine, when, config, customer_ids=[customer]), want_hist, "offer history")
