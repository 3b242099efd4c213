"""Basket clusterer: named clusters, no-purchase rows, JSON round trip, sklearn conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from nextbest.features.baskets import BasketClusterer
from sklearn.base import clone

COLS = ["spend_share_home", "spend_share_shoes", "spend_share_other"]


def shares(rows: list[tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLS)


def test_clusters_are_named_after_their_dominant_category() -> None:
    train = shares([(1, 0, 0), (0.9, 0.1, 0), (0, 1, 0), (0.1, 0.9, 0), (0, 0, 1), (0, 0, 0)])
    est = BasketClusterer(n_clusters=3, random_state=0).fit(train)
    assert sorted(est.cluster_names_) == ["home", "other", "shoes"]
    got = est.predict(shares([(0.8, 0.2, 0), (0, 0.7, 0.3), (0, 0, 0)]))
    assert list(got) == ["home", "shoes", "none"]


def test_fewer_distinct_baskets_than_clusters_and_repeated_names() -> None:
    est = BasketClusterer(n_clusters=6).fit(shares([(1, 0, 0), (0.6, 0.4, 0), (1, 0, 0)]))
    assert list(est.cluster_names_) == ["home", "home_2"]
    assert list(BasketClusterer().fit(shares([(0, 0, 0)])).predict(shares([(1, 0, 0)]))) == ["none"]


def test_round_trip_and_clone() -> None:
    train = shares([(1, 0, 0), (0, 1, 0), (0, 0.5, 0.5), (0.2, 0.2, 0.6)])
    est = BasketClusterer(n_clusters=2, random_state=3).fit(train)
    back = BasketClusterer.from_dict(est.to_dict())
    np.testing.assert_array_equal(back.predict(train), est.predict(train))
    assert clone(est).get_params() == {"n_clusters": 2, "max_train_rows": 100_000, "random_state": 3}
