"""Engagement group against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nextbest.features.pipeline import build_features

from .conftest import T

DAY = pd.Timedelta(days=1)
# (days before T, type, weight of its family in the default config)
EVENTS = [(1, "web.view.category.shoes", 1.0), (1, "web.search", 1.0), (10, "app.open", 1.0),
          (20, "email.open", 0.5), (20, "email.click", 0.5), (40, "store.visit", 3.0)]


def score_at(at: pd.Timestamp) -> float:
    """The engagement score by its definition: decayed weights of interactions before ``at``."""
    return sum(w * 0.5 ** ((at - (T - d * DAY)) / DAY / 14) for d, _, w in EVENTS if T - d * DAY < at)


@pytest.fixture
def frame(add, con, config) -> pd.DataFrame:
    add("customers", [{"customer_id": 1}, {"customer_id": 2}])
    add("interactions", [{"customer_id": 1, "ts": T - d * DAY, "type": t} for d, t, _ in EVENTS]
        + [{"customer_id": 1, "ts": T, "type": "service.call"}, {"customer_id": 1, "ts": T + DAY, "type": "web.search"}])
    add("decisions", [
        {"decision_id": "a", "customer_id": 1, "ts": T - 25 * DAY, "channel": "email", "offer_id": "x", "contacted": True},
        {"decision_id": "b", "customer_id": 1, "ts": T - 50 * DAY, "channel": "email", "offer_id": "x", "contacted": True},
        {"decision_id": "c", "customer_id": 1, "ts": T - 5 * DAY, "channel": "email", "offer_id": "x", "contacted": False},
    ])
    return build_features(con, T, config).set_index("customer_id")


def test_counts_recency_and_rates(frame: pd.DataFrame) -> None:
    c = frame.loc[1]
    assert (c.interactions_7d, c.interaction_types_7d, c.web_interactions_7d) == (2, 2, 2)
    assert (c.interactions_30d, c.interaction_types_30d, c.email_interactions_30d, c.app_interactions_30d) == (5, 5, 2, 1)
    assert (c.interactions_90d, c.store_interactions_90d, c.service_interactions_90d) == (6, 1, 0)
    assert c.days_since_last_interaction == 1.0
    assert (c.email_open_rate, c.email_click_rate) == (0.5, 0.5)  # 1 open, 1 click / 2 e-mail contacts


def test_score_trend_and_stage(frame: pd.DataFrame) -> None:
    c = frame.loc[1]
    assert c.engagement_score == pytest.approx(score_at(T), abs=1e-8)
    weekly = [score_at(T - 7 * j * DAY) for j in (3, 2, 1, 0)]
    assert c.engagement_trend == pytest.approx(np.polyfit(range(4), weekly, 1)[0], abs=1e-8)
    assert 2.0 <= c.engagement_score < 6.0 and c.journey_stage == "nurturing"


def test_no_history_defaults(frame: pd.DataFrame) -> None:
    c = frame.loc[2]
    assert c.interactions_90d == 0 and c.web_interactions_7d == 0 and c.interaction_types_30d == 0
    assert np.isnan(c.days_since_last_interaction) and np.isnan(c.email_open_rate)
    assert (c.engagement_score, c.engagement_trend, c.journey_stage) == (0.0, 0.0, "awareness")
