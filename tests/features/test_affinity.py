"""Category affinity group against hand-computed values."""

from __future__ import annotations

import pandas as pd
import pytest
from nextbest.features.affinity import PRIOR_EVENTS, affinity_categories
from nextbest.features.pipeline import build_features
from nextbest.features.registry import basket_categories

from .conftest import T

DAY = pd.Timedelta(days=1)


@pytest.fixture
def frame(add, con, config) -> pd.DataFrame:
    add("customers", [{"customer_id": 1}, {"customer_id": 2}])
    add("interactions", [
        {"customer_id": 1, "ts": T - 400 * DAY, "type": "web.view.category.shoes"},  # all history counts
        {"customer_id": 1, "ts": T - 3 * DAY, "type": "web.view.product.shoes"},
        {"customer_id": 1, "ts": T - 2 * DAY, "type": "web.cart_add.home"},
        {"customer_id": 1, "ts": T - 2 * DAY, "type": "app.screen.category.pets"},  # not an offer category
        {"customer_id": 1, "ts": T - 1 * DAY, "type": "web.view.home"},  # the home page, not the category
        {"customer_id": 1, "ts": T - 1 * DAY, "type": "web.search"},
        {"customer_id": 1, "ts": T, "type": "web.view.category.shoes"},  # at the as-of time: not yet
    ])
    add("transactions", [
        {"customer_id": 1, "ts": T - 10 * DAY, "order_id": "a", "category": "shoes", "amount": 50.0},
        {"customer_id": 1, "ts": T + DAY, "order_id": "b", "category": "home", "amount": 50.0},
    ])
    return build_features(con, T, config).set_index("customer_id")


def test_counts_category_tagged_events_before_as_of(frame: pd.DataFrame, config) -> None:
    k = len(basket_categories(config))
    c = frame.loc[1]
    # shoes: two views + one order line; home: one cart add; pets: one screen (denominator only).
    assert c.category_events == 5
    assert c.category_affinity_shoes == pytest.approx((3 + PRIOR_EVENTS / k) / (5 + PRIOR_EVENTS))
    assert c.category_affinity_home == pytest.approx((1 + PRIOR_EVENTS / k) / (5 + PRIOR_EVENTS))
    assert c.category_affinity_kids == pytest.approx((PRIOR_EVENTS / k) / (5 + PRIOR_EVENTS))


def test_no_events_is_the_uniform_share(frame: pd.DataFrame, config) -> None:
    c = frame.loc[2]
    assert c.category_events == 0
    for cat in affinity_categories(config):
        assert c[f"category_affinity_{cat}"] == pytest.approx(1 / len(basket_categories(config)))
