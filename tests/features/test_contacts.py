"""Contact history and reaction group against hand-computed values."""

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
    decisions = [  # (id, days before T, contacted)
        ("d1", 3, True), ("d2", 20, True), ("d3", 100, True), ("d4", 50, False), ("d5", 60, False), ("d6", -1, True),
    ]
    add("decisions", [{"decision_id": d, "customer_id": 1, "ts": T - days * DAY, "offer_id": "x", "channel": "email",
                       "contacted": c} for d, days, c in decisions]
        + [{"decision_id": "n1", "customer_id": 1, "ts": T - DAY, "offer_id": None, "channel": None, "contacted": False}])
    add("responses", [
        {"decision_id": "d2", "ts": T - 19 * DAY, "outcome": "open"},
        {"decision_id": "d2", "ts": T - 18 * DAY, "outcome": "conversion"},
        {"decision_id": "d3", "ts": T - 99 * DAY, "outcome": "complaint"},
        {"decision_id": "d4", "ts": T - 45 * DAY, "outcome": "conversion"},
        {"decision_id": "d1", "ts": T + DAY, "outcome": "conversion"},  # after the as-of time
    ])
    types = ["web.view.offer", "app.screen.offers", "social.like", "service.complaint", "service.complaint",
             "email.preferences", "web.login", "web.search"]
    add("interactions", [{"customer_id": 1, "ts": T - 5 * DAY, "type": t} for t in types]
        + [{"customer_id": 1, "ts": T - 500 * DAY, "type": "service.complaint"},  # outside the 365-day window
           {"customer_id": 1, "ts": T - 8 * DAY, "type": "social.review", "value": 2.0},
           {"customer_id": 1, "ts": T - 9 * DAY, "type": "social.review", "value": 5.0}])
    return build_features(con, T, config).set_index("customer_id")


def test_contact_counts_and_reactions(frame: pd.DataFrame) -> None:
    c = frame.loc[1]
    assert (c.contacts_7d, c.contacts_30d, c.contacts_total, c.holdouts_total) == (1, 2, 3, 2)
    assert (c.contact_responses, c.contact_conversions) == (1, 1)  # d2 opened and converted: one decision
    assert (c.holdout_conversions, c.contact_complaints) == (1, 1)


def test_habit_signals_and_care(frame: pd.DataFrame) -> None:
    c = frame.loc[1]
    n = 11  # every interaction before T, reviews and the old complaint included
    assert (c.offer_views_total, c.social_promotion_total, c.service_contacts_total) == (2, 1, 3)
    assert (c.preference_visits_total, c.logins_total) == (1, 1)
    assert c.offer_views_share == pytest.approx(2 / n) and c.service_contacts_share == pytest.approx(3 / n)
    assert c.complaints_365d == 2
    assert c.review_rating_avg == pytest.approx(3.5)


def test_no_history_defaults(frame: pd.DataFrame) -> None:
    c = frame.loc[2]
    assert (c.contacts_7d, c.contacts_total, c.contact_conversions, c.offer_views_total, c.complaints_365d) == (0,) * 5
    assert np.isnan(c.offer_views_share) and np.isnan(c.review_rating_avg)
