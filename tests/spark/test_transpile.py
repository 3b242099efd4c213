"""The DuckDB-to-Spark transpiler: its rewrites and its allow-list (no Spark session needed)."""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("sqlglot")

from nextbest.config import load_config  # noqa: E402
from nextbest.features import pipeline  # noqa: E402
from nextbest.features.offer_history import offer_history_sql  # noqa: E402
from nextbest.features.query import compose  # noqa: E402
from nextbest.spark.transpile import TranspileError, transpile  # noqa: E402
from nextbest.training.dataset import training_set_sql  # noqa: E402


@pytest.mark.parametrize(("sql", "params", "message"), [
    ("SELECT my_udf(a) FROM t", {}, "function my_udf() is not on the Spark allow-list (in: MY_UDF(a))"),
    ("SELECT regexp_matches(a, 'x') FROM t", {}, "function RegexpLike is not on the Spark allow-list"),
    ("SELECT a FROM t QUALIFY row_number() OVER (ORDER BY a) = 1", {}, "construct Qualify is not on the Spark allow-list"),
    ("SELECT * FROM t ASOF JOIN s ON t.k = s.k AND t.ts >= s.ts", {}, "ASOF JOIN is not on the Spark allow-list"),
    ("SELECT date_diff('month', a, b) FROM t", {}, "date_diff unit 'month' is not on the Spark allow-list"),
    ("SELECT a FROM t WHERE ts < $as_of", {}, "parameter $as_of is not bound; pass it by name"),
    ("SELECT a FROM t WHERE ts < $as_of", {"as_of": object()}, "parameter $as_of: values of type object cannot be bound"),
    ("SELECT FROM WHERE (", {}, "sqlglot cannot parse the statement as duckdb SQL"),
])
def test_off_the_allow_list_fails_loudly(sql: str, params: dict, message: str) -> None:
    with pytest.raises(TranspileError) as err:
        transpile(sql, params)
    assert message in str(err.value)


def test_rewrites() -> None:
    sql = transpile(
        "WITH a AS NOT MATERIALIZED (SELECT birth_date + to_years(CAST(3 AS INTEGER)) AS b, ts + to_days($w) AS t, "
        "x / 365.25 AS y, date_diff('millisecond', ts, $as_of) AS ms FROM features.customer_snapshot s) "
        "SELECT * FROM a WHERE list_contains($ids, 1)",
        {"w": 14, "as_of": dt.datetime(2024, 6, 30), "ids": [1, 2]},
    )
    assert "MATERIALIZED" not in sql
    assert "MAKE_YM_INTERVAL(CAST(3 AS INT), 0)" in sql
    assert "MAKE_DT_INTERVAL(14, 0, 0, 0)" in sql
    assert "CAST(365.25 AS DOUBLE)" in sql
    assert "FLOOR(UNIX_MICROS(CAST(ts AS TIMESTAMP)) / CAST(1000.0 AS DOUBLE))" in sql
    assert "CAST('2024-06-30 00:00:00' AS TIMESTAMP)" in sql
    assert "FROM features__customer_snapshot AS s" in sql
    assert "ARRAY_CONTAINS(ARRAY(1, 2), 1)" in sql


def test_every_statement_nextbest_runs_is_on_the_allow_list() -> None:
    config = load_config(None)
    groups = [g.query(config) for g in pipeline.GROUPS]
    as_of = {"as_of": dt.datetime(2024, 6, 30), "customer_ids": [1, 2]}
    for filtered in (False, True):
        transpile(compose(config, groups, pipeline.sql_features(config), filtered=filtered), as_of)
        transpile(offer_history_sql(config, filtered=filtered), as_of)
    transpile(training_set_sql(("engagement_score",), ("shown_30d",), with_truth=True),
              {"window": 14, "until": dt.datetime(2024, 6, 30), "outcomes": ["conversion"], "experiments": None})


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_rounding_and_millisecond_differences_agree_with_duckdb(spark) -> None:  # type: ignore[no-untyped-def]
    """Values right at a rounding half and timestamps with sub-millisecond parts: where Spark's own
    ``round`` and ``timestampdiff`` differ from DuckDB's, the rewrites do not."""
    import duckdb
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 20_000
    halves = (np.floor(rng.random(n) * 1e9) + 0.5) / 1e9 * rng.integers(1, 50, n)
    frame = pd.DataFrame({
        "i": np.arange(2 * n), "x": np.concatenate([halves, rng.normal(0, 100, n)]),
        "a": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**12, 2 * n), unit="us"),
        "b": pd.Timestamp("1969-12-31") + pd.to_timedelta(rng.integers(0, 10**12, 2 * n), unit="us"),
    })
    sql = "SELECT i, round(x, 9) AS r, date_diff('millisecond', b, a) AS ms FROM t ORDER BY i"
    want = duckdb.sql(sql.replace("FROM t", "FROM frame")).df()
    spark.createDataFrame(frame).createOrReplaceTempView("t")
    got = spark.sql(transpile(sql)).toPandas()
    assert (got["r"].to_numpy() == want["r"].to_numpy()).all()
    assert (got["ms"].to_numpy() == want["ms"].to_numpy()).all()
    # Spark's own round differs at the halves: the rewrite is needed.
    plain = spark.sql("SELECT round(x, 9) AS r FROM t ORDER BY i").toPandas()
    assert (plain["r"].to_numpy() != want["r"].to_numpy()).sum() > 10
