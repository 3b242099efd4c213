"""FeatureStore: look-ups, cold start, warehouse and Parquet sources."""

from __future__ import annotations

import pandas as pd
import pytest
from nextbest.features.pipeline import build_features, build_offer_history, fit_feature_models
from nextbest.features.snapshots import manifest, write_parquet, write_snapshot
from nextbest.features.store import FeatureStore

from nextbest.errors import NotFoundError

from .conftest import T

DAY = pd.Timedelta(days=1)


@pytest.fixture
def snapshot(add, con, config, tmp_path):
    add("customers", [{"customer_id": i} for i in (1, 2, 3)])
    add("decisions", [{"decision_id": "d", "customer_id": 2, "ts": T - DAY, "offer_id": "book_club",
                       "channel": "email", "contacted": True}])
    models = fit_feature_models(con, T, config)
    feats, hist = build_features(con, T, config, models=models), build_offer_history(con, T, config)
    doc = manifest(feats, hist, T, models)
    write_snapshot(con, config, feats, hist, doc)
    con.close()
    return tmp_path / "warehouse.duckdb", feats, doc


def test_get_in_request_order_and_cold_start(snapshot, config) -> None:
    path, feats, _ = snapshot
    store = FeatureStore.from_warehouse(path, config)
    assert store.as_of == T and len(store) == 3 and 2 in store and 99 not in store
    got = store.get([3, 99, 1])
    assert list(got.customer_id) == [3, 1]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), feats.iloc[[2, 0]].reset_index(drop=True),
                                  check_dtype=False)
    assert store.get([]).empty
    hist = store.offer_history([1, 2, 99])
    assert list(zip(hist.customer_id, hist.offer_id)) == [(2, "book_club")]


def test_parquet_source(snapshot, tmp_path) -> None:
    _, feats, doc = snapshot
    out = tmp_path / "f.parquet"
    write_parquet(out, [(T - DAY, feats.assign(age=1.0)), (T, feats)], [doc])
    store = FeatureStore.from_parquet(out)
    assert store.as_of == T
    pd.testing.assert_frame_equal(store.get([1, 2, 3]).reset_index(drop=True), feats, check_dtype=False)


def test_missing_sources(tmp_path, config) -> None:
    with pytest.raises(NotFoundError, match="run `nextbest data generate`"):
        FeatureStore.from_warehouse(tmp_path / "nope.duckdb", config)
    with pytest.raises(NotFoundError, match="features build --output"):
        FeatureStore.from_parquet(tmp_path / "nope.parquet")
