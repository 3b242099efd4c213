"""Category demand group against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from nextbest.features.affinity import affinity_categories
from nextbest.features.demand import PRIOR_EVENTS_PER_CATEGORY
from nextbest.features.pipeline import build_features
from nextbest.features.registry import basket_categories

from .conftest import T, feature_config, random_warehouse

DAY = pd.Timedelta(days=1)


def _share(n_cat: int, n_all: int, k: int) -> float:
    a = PRIOR_EVENTS_PER_CATEGORY
    return math.log((n_cat + a) / (n_all + a * k))


@pytest.fixture
def frame(add, con, config) -> pd.DataFrame:
    add("customers", [{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 3}])
    # Customer 1 bought shoes lately; customer 2 bought home goods months ago. Demand is
    # everyone's, so customer 3 (no orders) reads the same values.
    add("interactions", [  # browsing is not demand
        *({"customer_id": 3, "ts": T - d * DAY, "type": "web.view.category.kids"} for d in (1, 2, 3)),
    ])
    add("transactions", [
        *({"customer_id": 1, "ts": T - d * DAY, "order_id": f"s{d}", "category": "shoes", "amount": 20.0}
          for d in (1, 2, 3, 5, 8, 13)),
        {"customer_id": 1, "ts": T - 400 * DAY, "order_id": "old", "category": "shoes", "amount": 20.0},  # > a year
        *({"customer_id": 2, "ts": T - d * DAY, "order_id": f"o{d}", "category": "home", "amount": 20.0}
          for d in (40, 60, 90, 120, 200, 300)),
        {"customer_id": 2, "ts": T - 1 * DAY, "order_id": "r", "category": "home", "amount": 20.0},
        {"customer_id": 2, "ts": T, "order_id": "now", "category": "shoes", "amount": 20.0},  # at as-of: not yet
    ])
    return build_features(con, T, config).set_index("customer_id")


def test_recent_share_against_the_year(frame: pd.DataFrame, config) -> None:
    k = len(basket_categories(config))
    # Last 14 days: 6 shoe lines and 1 home line (7); last 365 days: 13 lines.
    c = frame.loc[1]
    assert c.category_demand_shoes == pytest.approx(_share(6, 7, k) - _share(6, 13, k))
    assert c.category_demand_home == pytest.approx(_share(1, 7, k) - _share(7, 13, k))
    assert c.category_demand_kids == pytest.approx(_share(0, 7, k) - _share(0, 13, k))
    assert c.category_demand_shoes > 0 > c.category_demand_home


def test_the_same_for_every_customer(frame: pd.DataFrame, config) -> None:
    columns = [f"category_demand_{c}" for c in affinity_categories(config)]
    assert (frame[columns].nunique() == 1).all()


def test_one_customer_build_reads_the_whole_market(con, config) -> None:
    random_warehouse(con)
    everyone = build_features(con, T, config).set_index("customer_id")
    alone = build_features(con, T, config, customer_ids=[7]).set_index("customer_id")
    columns = [f"category_demand_{c}" for c in affinity_categories(config)]
    pd.testing.assert_series_equal(alone.loc[7, columns], everyone.loc[7, columns])
    assert everyone[columns].abs().to_numpy().max() > 0


def test_recent_window_is_configured(add, con, config) -> None:
    add("customers", [{"customer_id": 1}])
    add("transactions", [
        {"customer_id": 1, "ts": T - 3 * DAY, "order_id": "a", "category": "shoes", "amount": 20.0},
        {"customer_id": 1, "ts": T - 20 * DAY, "order_id": "b", "category": "home", "amount": 20.0},
    ])
    k = len(basket_categories(config))
    week = build_features(con, T, feature_config(config, demand_recent_days=7)).iloc[0]
    month = build_features(con, T, feature_config(config, demand_recent_days=30)).iloc[0]
    assert week.category_demand_home == pytest.approx(_share(0, 1, k) - _share(1, 2, k))
    assert month.category_demand_home == pytest.approx(0.0)


def test_no_events_reads_usual_demand(add, con, config) -> None:
    add("customers", [{"customer_id": 1}])
    row = build_features(con, T, config).iloc[0]
    for cat in affinity_categories(config):
        assert row[f"category_demand_{cat}"] == pytest.approx(0.0)
