"""Training on Spark: the as-of SQL transpiled gives DuckDB's training set, and ``train --engine spark`` its model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.models.registry import CHALLENGER, CHAMPION, load_scorer
from nextbest.spark.transpile import transpile
from nextbest.training.asof import asof_match
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from tests.spark.conftest import WorldLake, run
from tests.spark.test_features import assert_same
from tests.training.test_asof import tied_tables

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]


def test_asof_match_on_spark_with_ties(spark) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    decisions, snaps = tied_tables()
    spark.createDataFrame(decisions).createOrReplaceTempView("d")
    spark.createDataFrame(snaps).createOrReplaceTempView("snaps")
    sql = f"SELECT * FROM ({asof_match('d', 'decision_id', 'ts', 'snaps', 'as_of', ('customer_id',))}) m " \
          "ORDER BY decision_id"
    got = spark.sql(transpile(sql)).toPandas()
    con = duckdb.connect()
    con.register("d", decisions)
    con.register("snaps", snaps)
    want = con.execute("SELECT d.decision_id, s.as_of AS matched_as_of FROM d ASOF LEFT JOIN snaps s "
                       "ON d.customer_id = s.customer_id AND d.ts >= s.as_of ORDER BY d.decision_id").df()
    assert got["matched_as_of"].isna().sum() > 20
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_training_set_on_spark_equals_duckdb(world_lake: WorldLake, spark) -> None:  # type: ignore[no-untyped-def]
    from nextbest.features.registry import categorical_features, feature_defs, model_features, offer_history_features
    from nextbest.spark.features import SparkEngine
    from nextbest.spark.training import build_spark_training_set
    from nextbest.training.dataset import build_training_set

    config = world_lake.ws.config()
    history = {d.name: d.default for d in offer_history_features(feature_defs(config))}
    con = connect(world_lake.ws.warehouse_path, read_only=True)
    try:
        want = build_training_set(con, config, features=model_features(config),
                                  categorical=categorical_features(config), offer_history=history,
                                  experiments=config.training.experiments)
    finally:
        con.close()
    got = build_spark_training_set(SparkEngine(spark, world_lake.lake), config)
    # The synthetic world's truth is not part of the lake (not a contract table).
    assert_same(got.frame, want.frame.drop(columns=["true_p_contact", "true_p_control"]), "training set")
    assert len(got.frame) > 100 and got.lineage == want.lineage
    assert (got.frame, got.feature_columns, got.categorical, got.defaults)[1:] == \
        (want.feature_columns, want.categorical, want.defaults)


def _train(ws: Workspace, *args: str) -> tuple[dict, str]:
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "train", "--json", *args])
    assert result.exception is None, f"{result.output}\n{result.exception!r}"
    return json.loads(result.stdout), result.stderr


def test_train_on_spark_fits_the_local_model(world_lake: WorldLake, spark: object, tmp_path: Path) -> None:
    """Same training set, same seed, same row order: LightGBM fits the same model on the driver."""
    shutil.copytree(world_lake.ws.root, tmp_path / "ws", ignore=shutil.ignore_patterns("*.log"))
    ws = Workspace.resolve(tmp_path / "ws")
    # The small world has few responses: a label and a split with positives in each part, small leaves.
    training = ws.config_dir / "training.yaml"
    overrides = {"label": "click", "validation_share": 0.25, "test_share": 0.35, "min_child_samples": 10}
    training.write_text(yaml.safe_dump(yaml.safe_load(training.read_text()) | overrides, sort_keys=False))
    local, _ = _train(ws)  # builds the decision dates' missing snapshots into the warehouse
    # The lake gets those snapshots too, so both engines match decisions to the same ones (building
    # them on Spark is build_snapshots, which the feature tests compare with DuckDB).
    run(ws, "data", "export", "--output", str(tmp_path / "lake"))
    remote, progress = _train(ws, "--engine", "spark", "--lake", str(tmp_path / "lake"))
    assert "missing feature snapshot" not in progress
    assert local["aliases"] == ["challenger", "champion"] and remote["aliases"] == ["challenger"]

    client = MlflowClient(tracking_uri=ws.tracking_uri)
    mine, theirs = (client.get_run(r["run_id"]).data for r in (local, remote))
    for key in ("train_rows", "validation_rows", "test_rows", "validation_from", "test_from", "rows", "positives",
                "feature_set_version", "n_features"):
        assert theirs.params[key] == mine.params[key], key
    assert int(theirs.params["train_rows"]) > 50
    assert theirs.params["engine"] == "spark"
    # The oracle metrics need the synthetic world's truth, which the lake does not carry.
    assert not any(k.startswith("oracle") for k in theirs.metrics)
    shared = {k for k in mine.metrics if k.startswith("test_")}
    assert {"test_auc", "test_logloss", "test_qini"} <= shared <= set(theirs.metrics)
    for key in shared:
        assert theirs.metrics[key] == pytest.approx(mine.metrics[key], abs=1e-9), key

    # The same predictions: every decision of the training set scored by both registered models.
    from nextbest.training.trainer import load_training_set

    data, _ = load_training_set(ws, ws.config())
    frame = data.frame[list(data.feature_columns)]
    a, b = load_scorer(ws.tracking_uri, CHAMPION).score(frame), load_scorer(ws.tracking_uri, CHALLENGER).score(frame)
    assert list(a.columns) == list(b.columns) and len(a) == len(data.frame)
    for c in a.columns:
        assert np.allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=0, atol=1e-12), c
    assert a["uplift"].std() > 0  # a model that learned something, not a constant
