"""The simulator's books: attributed versus incremental revenue, increments against none, regret."""

from __future__ import annotations

import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.simulation.accounting import Ledger, summarise

CONFIG = load_config()
EMAIL_COST = CONFIG.channel("email").cost_per_contact
SMS_COST = CONFIG.channel("sms").cost_per_contact


def _decisions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "decision_id": ["a", "b", "c", "d", "e"],
            "customer_id": [1, 2, 3, 4, 5],
            "offer_id": ["beauty_box", "beauty_box", "sports_gear", None, "sports_gear"],
            "channel": ["email", "email", "sms", None, "sms"],
            "contacted": [True, True, True, False, False],
        }
    )


def _conversions(*pairs: tuple[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"decision_id": [p[0] for p in pairs], "ts": pd.Timestamp("2024-05-01"), "outcome": "conversion",
         "revenue": [p[1] for p in pairs]}
    )


def _truth() -> pd.DataFrame:
    return pd.DataFrame(
        {"decision_id": ["a", "b", "c", "e"], "p_contact": [0.5, 0.2, 0.1, 0.3], "p_control": [0.4, 0.1, 0.2, 0.3],
         "expected_revenue": [100.0, 50.0, 10.0, 10.0]}
    )


def test_a_day_books_attributed_and_incremental_revenue_separately() -> None:
    ledger = Ledger()
    # a converts either way (no increment), b only because contacted, c would have converted
    # without the contact (a sleeping dog), e is a control decision (never counted).
    real = pd.concat([_conversions(("a", 80.0), ("b", 40.0), ("e", 9.0)),
                      pd.DataFrame({"decision_id": ["a"], "ts": pd.Timestamp("2024-05-01"), "outcome": ["click"], "revenue": [None]})])
    cf = _conversions(("a", 80.0), ("c", 12.0))
    organic = pd.DataFrame({"amount": [10.0, 5.5]})
    ledger.add_day(0, _decisions(), real, cf, _truth(), organic, CONFIG)

    assert ledger.contacts_by_channel == {"email": 2, "sms": 1}
    assert ledger.contact_cost == pytest.approx(2 * EMAIL_COST + SMS_COST)
    assert ledger.conversions == 2
    assert ledger.revenue == pytest.approx(120.0)
    assert ledger.incremental_conversions == 0  # b gained, c lost
    assert ledger.incremental_conversion_revenue == pytest.approx(40.0 - 12.0)
    assert ledger.expected_incremental_revenue == pytest.approx(0.1 * 100 + 0.1 * 50 - 0.1 * 10)
    assert ledger.organic_revenue == pytest.approx(15.5)
    assert ledger.decisions == 5


def _ledger(conversion_increment: float, cost: float, organic: float) -> Ledger:
    return Ledger(incremental_conversion_revenue=conversion_increment, contact_cost=cost, organic_revenue=organic)


def test_increments_are_against_none_and_regret_against_the_oracle() -> None:
    ledgers = {
        "champion": _ledger(900.0, 100.0, 10_050.0),
        "oracle": _ledger(1_500.0, 50.0, 10_000.0),
        "none": _ledger(0.0, 0.0, 10_000.0),
    }
    results = {r.policy: r for r in summarise(ledgers, {"champion": {"contact_cap": 0}}, {}, {})}

    champion = results["champion"]
    assert champion.incremental_revenue == pytest.approx(900.0 + 50.0)
    assert champion.organic_revenue_change == pytest.approx(50.0)
    assert champion.incremental_profit == pytest.approx(950.0 - 100.0)
    assert champion.regret_vs_oracle == pytest.approx(1_450.0 - 850.0)
    assert champion.share_of_oracle == pytest.approx(850.0 / 1_450.0)
    assert results["oracle"].regret_vs_oracle == 0
    assert results["none"].incremental_profit == 0
    assert set(champion.as_dict()) >= {
        "policy", "revenue", "incremental_revenue", "contact_cost", "incremental_profit", "conversions",
        "contacts_by_channel", "violations", "regret_vs_oracle",
    }


def test_without_an_oracle_there_is_no_regret() -> None:
    results = summarise({"random": _ledger(10.0, 1.0, 0.0), "none": _ledger(0.0, 0.0, 0.0)}, {}, {}, {})
    assert all(r.regret_vs_oracle is None and r.share_of_oracle is None for r in results)


def _daily_ledger(days: list[tuple[float, float, float]]) -> Ledger:
    """A ledger from (incremental conversion revenue, contact cost, organic revenue) per day."""
    ledger = Ledger()
    for day, (incremental, cost, organic) in enumerate(days):
        ledger.incremental_conversion_revenue += incremental
        ledger.contact_cost += cost
        ledger.organic_revenue += organic
        ledger.daily.append({"day": 40 + day, "decisions": 1, "contacts": 1, "contact_cost": cost, "revenue": incremental,
                             "incremental_conversion_revenue": incremental, "organic_revenue": organic})
    return ledger


def test_the_learning_curve_is_the_share_of_the_oracle_per_period() -> None:
    """Periods of 2 days over 5 days: [0, 2), [2, 4), [4, 5); a policy that learns closes the gap."""
    none = _daily_ledger([(0.0, 0.0, 10.0)] * 5)
    oracle = _daily_ledger([(20.0, 2.0, 11.0)] * 5)  # 19 a day against none
    champion = _daily_ledger([(5.0, 2.0, 10.0), (7.0, 2.0, 10.0), (12.0, 2.0, 11.0), (14.0, 2.0, 11.0), (20.0, 2.0, 11.0)])
    results = {r.policy: r for r in summarise({"champion": champion, "oracle": oracle, "none": none}, {}, {}, {}, 2)}
    curve = results["champion"].periods
    assert [(p["from_day"], p["days"]) for p in curve] == [(0, 2), (2, 2), (4, 1)]
    assert [p["incremental_profit"] for p in curve] == [8.0, 24.0, 19.0]
    assert [p["oracle_incremental_profit"] for p in curve] == [38.0, 38.0, 19.0]
    assert [p["share_of_oracle"] for p in curve] == [pytest.approx(8 / 38, abs=1e-4), pytest.approx(24 / 38, abs=1e-4), 1.0]
    # The periods add up to the whole run's figure, which stays as it was.
    assert sum(p["incremental_profit"] for p in curve) == pytest.approx(results["champion"].incremental_profit)
    assert results["champion"].as_dict()["share_of_oracle_by_period"] == [dict(p) for p in curve]
    # Without an oracle the periods still carry each policy's profit, and no share.
    alone = {r.policy: r for r in summarise({"champion": champion, "none": none}, {}, {}, {}, 10)}
    (only,) = alone["champion"].periods
    assert only["incremental_profit"] == pytest.approx(51.0) and only["share_of_oracle"] is None
