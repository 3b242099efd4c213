"""Warehouse summary: counts, consent, vocabulary, date ranges, campaign response rates."""

from __future__ import annotations

import datetime as dt

import pytest
from nextbest.warehouse.summary import campaign_rates, summarise


@pytest.fixture
def campaigns(con):
    """Four historical decisions: two random (one converts for 30), two control (one converts for 10)."""
    con.execute(
        """
        DELETE FROM responses; DELETE FROM decisions;
        INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, arm, experiment, contacted) VALUES
            ('a', 1, TIMESTAMP '2024-01-01', 'o', 'email', 'random', 'historical', true),
            ('b', 2, TIMESTAMP '2024-01-08', 'o', 'email', 'random', 'historical', true),
            ('c', 3, TIMESTAMP '2024-01-01', 'o', 'email', 'control', 'historical', false),
            ('d', 1, TIMESTAMP '2024-01-09', 'o', 'sms', 'control', 'historical', false),
            ('e', 2, TIMESTAMP '2024-02-01', NULL, NULL, 'champion', NULL, false);
        INSERT INTO responses VALUES
            ('a', TIMESTAMP '2024-01-02', 'open', NULL),
            ('a', TIMESTAMP '2024-01-02', 'click', NULL),
            ('a', TIMESTAMP '2024-01-03', 'conversion', 30),
            ('b', TIMESTAMP '2024-01-09', 'open', NULL),
            ('b', TIMESTAMP '2024-01-10', 'unsubscribe', NULL),
            ('c', TIMESTAMP '2024-01-05', 'conversion', 10);
        """
    )
    return con


def test_campaign_rates_by_experiment_and_arm(campaigns) -> None:
    rows = {(r["experiment"], r["arm"]): r for r in campaign_rates(campaigns)}
    assert set(rows) == {("historical", "random"), ("historical", "control"), ("(none)", "champion")}
    random, control = rows["historical", "random"], rows["historical", "control"]
    assert (random["decisions"], random["contacted_share"]) == (2, 1.0)
    assert (random["open_rate"], random["click_rate"], random["conversion_rate"]) == (1.0, 0.5, 0.5)
    assert random["complaint_unsubscribe_rate"] == 0.5
    assert random["revenue_per_decision"] == 15.0
    assert (control["contacted_share"], control["conversion_rate"], control["revenue_per_decision"]) == (0.0, 0.5, 5.0)
    assert (control["first"], control["last"]) == (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 9))


def test_summary_counts_consent_types_and_dates(campaigns, config) -> None:
    campaigns.execute("CREATE SCHEMA features; CREATE TABLE features.customer_snapshot AS SELECT 1 AS customer_id")
    summary = summarise(campaigns, config)
    assert summary["tables"]["main.customers"] == 3
    assert summary["tables"]["main.decisions"] == 5
    assert summary["tables"]["features.customer_snapshot"] == 1
    assert list(summary["tables"])[0].startswith("main.")
    assert summary["consent"]["email"] == pytest.approx(1 / 3)
    assert summary["consent"]["web"] == 1.0
    assert summary["interaction_types"] == {"distinct": 1, "families": {"web": {"types": 1, "events": 1}}}
    assert summary["date_range"]["transactions"] == {
        "first": dt.datetime(2024, 3, 1, 10),
        "last": dt.datetime(2024, 3, 1, 10),
    }
    assert summary["date_range"]["life_events"] == {"first": None, "last": None}
    assert len(summary["campaigns"]) == 3
