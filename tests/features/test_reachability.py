"""Reachability and offer history against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nextbest.features.offer_history import attach_offer_history
from nextbest.features.pipeline import build_features, build_offer_history

from .conftest import T

DAY = pd.Timedelta(days=1)


@pytest.fixture
def built(add, con, config) -> tuple[pd.DataFrame, pd.DataFrame]:
    add("customers", [
        {"customer_id": 1, "consent_email": True, "valid_email": True, "consent_sms": True, "valid_phone": None,
         "consent_push": None, "valid_push": True, "preferred_channel": "sms"},
        {"customer_id": 2},
    ])
    add("decisions", [
        {"decision_id": "d1", "customer_id": 1, "ts": T - 25 * DAY, "offer_id": "welcome_tips", "channel": "email", "contacted": True},
        {"decision_id": "d2", "customer_id": 1, "ts": T - 5 * DAY, "offer_id": "beauty_box", "channel": "sms", "contacted": True},
        {"decision_id": "d3", "customer_id": 1, "ts": T - 3 * DAY, "offer_id": "beauty_box", "channel": "push", "contacted": True},
        {"decision_id": "d4", "customer_id": 1, "ts": T - 60 * DAY, "offer_id": "welcome_tips", "channel": "email", "contacted": True},
        {"decision_id": "d5", "customer_id": 1, "ts": T - 2 * DAY, "offer_id": "welcome_tips", "channel": "email", "contacted": False},
    ])
    add("responses", [
        {"decision_id": "d1", "ts": T - 24 * DAY, "outcome": "open"},
        {"decision_id": "d2", "ts": T - 4 * DAY, "outcome": "complaint"},
        {"decision_id": "d3", "ts": T, "outcome": "click"},  # at T: not yet known
        {"decision_id": "d4", "ts": T - 59 * DAY, "outcome": "conversion"},
    ])
    return build_features(con, T, config).set_index("customer_id"), build_offer_history(con, T, config)


def test_consent_and_reachability(built: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame, _ = built
    c = frame.loc[1]
    assert (c.consent_email, c.reachable_email) == (True, True)
    assert (c.consent_sms, c.reachable_sms) == (True, False)  # unknown phone validity = invalid
    assert (c.consent_push, c.reachable_push) == (False, False)  # unknown consent = no consent
    assert (c.consent_web, c.reachable_web) == (True, True)
    assert (c.preferred_channel, c.last_responsive_channel) == ("sms", "email")
    n = frame.loc[2]
    assert not n[[f"reachable_{ch}" for ch in ("email", "sms", "push", "direct_mail", "outbound_call")]].any()
    assert n.reachable_web and (n.preferred_channel, n.last_responsive_channel) == ("none", "none")


def test_offer_history(built: tuple[pd.DataFrame, pd.DataFrame], config) -> None:
    _, history = built
    rows = history.set_index("offer_id")
    assert list(rows.index) == ["beauty_box", "welcome_tips"]
    w, b = rows.loc["welcome_tips"], rows.loc["beauty_box"]
    assert (w.shown_30d, w.shown_90d, w.days_since_shown, w.responded_before, w.converted_before) == (1, 2, 25.0, True, True)
    assert (b.shown_30d, b.shown_90d, b.days_since_shown, b.responded_before, b.converted_before) == (2, 2, 3.0, False, False)
    candidates = pd.DataFrame({"customer_id": [2, 1], "offer_id": ["welcome_tips", "welcome_tips"]}, index=[10, 11])
    joined = attach_offer_history(candidates, history, config)
    assert list(joined.index) == [10, 11]
    assert (joined.loc[10, "shown_90d"], joined.loc[10, "responded_before"]) == (0, False)
    assert np.isnan(joined.loc[10, "days_since_shown"]) and joined.loc[11, "shown_90d"] == 2
