"""Training sets on Spark: the as-of SQL transpiled gives DuckDB's training set."""

from __future__ import annotations

import pandas as pd
import pytest

from nextbest.spark.transpile import transpile
from nextbest.training.asof import asof_match
from nextbest.warehouse.db import connect
from tests.spark.conftest import WorldLake
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
