"""Value group (and the order-count event, spend shares) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nextbest.features.pipeline import build_features

from .conftest import T

DAY = pd.Timedelta(days=1)


@pytest.fixture
def frame(add, con, config) -> pd.DataFrame:
    add("customers", [{"customer_id": 1}, {"customer_id": 2}])
    add("transactions", [
        {"customer_id": 1, "ts": T - 10 * DAY, "order_id": "o1", "category": "home", "amount": 100.0, "margin": 30.0},
        {"customer_id": 1, "ts": T - 10 * DAY, "order_id": "o1", "category": "shoes", "amount": 50.0, "margin": 10.0},
        {"customer_id": 1, "ts": T - 100 * DAY, "order_id": "o2", "category": "garden", "amount": 200.0, "margin": 60.0},
        {"customer_id": 1, "ts": T - 400 * DAY, "order_id": "o3", "category": "home", "amount": 80.0, "margin": 20.0},
        {"customer_id": 1, "ts": T, "order_id": "o4", "category": "home", "amount": 999.0, "margin": 99.0},
    ])
    return build_features(con, T, config).set_index("customer_id")


def test_rfm_and_totals(frame: pd.DataFrame) -> None:
    c = frame.loc[1]
    assert (c.recency_days, c.frequency_365d, c.monetary_365d, c.margin_365d) == (10.0, 2, 350.0, 100.0)
    assert (c.avg_order_value_365d, c.category_breadth_365d) == (175.0, 3)
    assert (c.orders_total, c.monetary_total) == (3, 430.0)
    assert bool(c.order_count_crossed)  # the third order (o1) was 10 days ago, within 14
    assert c.clv_12m == 100.0  # two customers: too few for the regressor, run rate = margin_365d


def test_spend_shares_and_cluster(frame: pd.DataFrame) -> None:
    c = frame.loc[1]
    assert (c.spend_share_home, c.spend_share_shoes, c.spend_share_garden) == pytest.approx((100 / 350, 50 / 350, 200 / 350))
    assert c.spend_share_other == 0.0 and c.basket_cluster == "garden"


def test_no_history_defaults(frame: pd.DataFrame) -> None:
    c = frame.loc[2]
    assert (c.frequency_365d, c.monetary_365d, c.orders_total, c.category_breadth_365d, c.clv_12m) == (0, 0.0, 0, 0, 0.0)
    assert np.isnan(c.recency_days) and np.isnan(c.avg_order_value_365d)
    assert c.basket_cluster == "none" and not c.order_count_crossed and c.spend_share_home == 0.0
