"""Events and triggers as of the as-of time: birthday, move, contract end, newsletter
sign-up, order count crossing a threshold (the last one is computed with the orders, :mod:`.value`).

Dates of events (``life_events.event_date``, else the day the event became known)
are compared with the as-of *date*; only events known before the as-of time count.
"""

from __future__ import annotations

from nextbest.features.pit import AS_OF_DATE
from nextbest.features.query import GroupQuery
from nextbest.features.registry import event_feature_names

from nextbest.config import NextbestConfig


def days_to_birthday() -> str:
    """Days from the as-of date to the next birthday (29 February falls on 28 February in other years)."""
    d = AS_OF_DATE
    this_year = f"(c.birth_date + to_years(CAST(year({d}) - year(c.birth_date) AS INTEGER)))"
    next_year = f"(c.birth_date + to_years(CAST(year({d}) - year(c.birth_date) + 1 AS INTEGER)))"
    return (
        f"CASE WHEN c.birth_date IS NULL OR c.birth_date >= {d} THEN NULL "
        f"WHEN {this_year} >= {d} THEN date_diff('day', {d}, {this_year}) "
        f"ELSE date_diff('day', {d}, {next_year}) END"
    )


def query(config: NextbestConfig) -> GroupQuery:
    """Life-event flags, birthday and newsletter expressions."""
    fc = config.features
    names = event_feature_names(config)
    d = AS_OF_DATE
    life = (
        "SELECT customer_id, "
        f"bool_or(event_type = 'moved' AND date_diff('day', event_date, {d}) BETWEEN 0 AND {fc.moved_recently_days}) "
        "AS moved_recently, "
        f"bool_or(event_type = 'contract_end' AND date_diff('day', {d}, event_date) BETWEEN 0 AND {fc.event_horizon_days}) "
        "AS _contract_end_soon, "
        "min(age_days) FILTER (WHERE event_type = 'newsletter_signup') AS _newsletter_event_age "
        "FROM pit_life_events GROUP BY customer_id"
    )
    r = fc.newsletter_recent_days
    return GroupQuery(
        ctes=[("g_life_events", life)],
        joined=["g_life_events"],
        derived={
            "days_to_birthday": days_to_birthday(),
            names["birthday"]: f"({days_to_birthday()}) <= {fc.event_horizon_days}",
            names["contract_end"]: "_contract_end_soon",
            "newsletter_signup_recent": f"(_newsletter_event_age <= {r} OR _newsletter_interaction_age <= {r})",
        },
    )
