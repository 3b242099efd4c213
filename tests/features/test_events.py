"""Events, triggers and the interest category against hand-computed values."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from nextbest.features.pipeline import build_features

from .conftest import T

DAY = pd.Timedelta(days=1)


@pytest.mark.parametrize(("birth", "as_of", "days"), [
    ("1990-07-03", "2024-06-30", 3),
    ("1990-06-30", "2024-06-30", 0),
    ("1990-06-29", "2024-06-30", 364),
    ("2000-02-29", "2025-02-27", 1),   # no 29 February in 2025: 28 February
    ("2000-02-29", "2024-02-28", 1),
    ("1990-12-31", "2024-12-31 18:00", 0),
])
def test_days_to_birthday(add, con, config, birth: str, as_of: str, days: int) -> None:
    add("customers", [{"customer_id": 1, "birth_date": dt.date.fromisoformat(birth)}])
    c = build_features(con, as_of, config).iloc[0]
    assert c.days_to_birthday == days and bool(c.birthday_within_7d) == (days <= 7)


@pytest.fixture
def frame(add, con, config) -> pd.DataFrame:
    add("customers", [{"customer_id": i} for i in (1, 2, 3)])
    add("life_events", [
        {"customer_id": 1, "ts": T - 9 * DAY, "event_type": "moved", "event_date": (T - 10 * DAY).date()},
        {"customer_id": 1, "ts": T - 3 * DAY, "event_type": "contract_end", "event_date": (T + 5 * DAY).date()},
        {"customer_id": 1, "ts": T - 20 * DAY, "event_type": "newsletter_signup"},
        {"customer_id": 2, "ts": T - 40 * DAY, "event_type": "moved"},
        {"customer_id": 2, "ts": T - 3 * DAY, "event_type": "contract_end", "event_date": (T + 10 * DAY).date()},
        {"customer_id": 2, "ts": T, "event_type": "newsletter_signup"},  # at T: not yet known
    ])
    add("interactions", [
        {"customer_id": 3, "ts": T - 3 * DAY, "type": "email.newsletter_signup"},
        *({"customer_id": 3, "ts": T - d * DAY, "type": f"web.view.category.{c}"}
          for d, c in [(2, "shoes"), (3, "shoes"), (4, "shoes"), (1, "home"), (1, "home"), (5, "garden"),
                       (5, "garden"), (5, "garden"), (5, "garden"), (50, "books"), (50, "books"), (50, "books")]),
    ])
    add("transactions", [{"customer_id": 3, "ts": T - 5 * DAY, "order_id": "g", "category": "garden", "amount": 10.0}])
    return build_features(con, T, config).set_index("customer_id")


def test_life_events(frame: pd.DataFrame) -> None:
    one, two, three = frame.loc[1], frame.loc[2], frame.loc[3]
    assert (one.moved_recently, one.contract_end_within_7d, one.newsletter_signup_recent) == (True, True, False)
    assert (two.moved_recently, two.contract_end_within_7d, two.newsletter_signup_recent) == (False, False, False)
    assert three.newsletter_signup_recent  # from the email.newsletter_signup interaction


def test_interest_category(frame: pd.DataFrame) -> None:
    # garden is viewed most but was bought; books are outside the 30-day window
    assert frame.loc[3].interest_category == "shoes"
    assert frame.loc[1].interest_category == "none"
