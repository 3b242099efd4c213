"""Contact history and reactions: fatigue, response to past campaigns, complaints, service.

These are the traces of *how a customer reacts to marketing*, which is what uplift
depends on:

* fatigue (contact pressure, :func:`pressure_features`) - contacts (any offer) in the last 7 and 30 days,
  on each channel in the last 7 days, and days since the latest contact;
* past campaigns - contacts and hold-outs so far, contacted decisions answered
  (open/click/visit/conversion) or converted, hold-out decisions that converted
  anyway, and contacts answered with a complaint or an unsubscribe;
* habits (:data:`SIGNALS`) - over the whole history, how often a customer looks at the
  offers page, likes or shares on social media, calls the service desk, visits the
  e-mail preferences or logs in, as counts and as shares of all their interactions
  (a share separates a habit from mere activity);
* care - service-desk complaints in the value window and the average review rating.

Decisions and responses come from the point-in-time views, so a response counts
only once it happened before the as-of time.
"""

from __future__ import annotations

from nextbest.features.pressure import (  # noqa: F401 - the pressure definition, re-exported
    CHANNEL_WINDOW_DAYS, DAYS_SINCE_CONTACT, PRESSURE_HORIZON_DAYS, PressureFeature, constrained_pressure,
    pressure_features, pressure_sql, pressure_values, recent_contacts,
)
from nextbest.features.query import GroupQuery, literal
from nextbest.features.registry import CONTACT_WINDOWS, HABIT_SIGNALS, POSITIVE_OUTCOMES, VALUE_WINDOW_DAYS

from nextbest.config import NextbestConfig

#: Habit signals (declared with the registry): feature stem -> interaction types.
SIGNALS = HABIT_SIGNALS
COMPLAINT_TYPE = "service.complaint"
REVIEW_TYPE = "social.review"
#: Responses that say "stop": a complaint about the contact or an unsubscribe.
NEGATIVE_OUTCOMES: tuple[str, ...] = ("complaint", "unsubscribe")


def _in(values: tuple[str, ...]) -> str:
    return f"({', '.join(literal(v) for v in values)})"


def query(config: NextbestConfig) -> GroupQuery:
    """Contact counts, campaign reactions and care signals per customer."""
    recent = ", ".join(f"{sql} AS {name}" for name, sql in pressure_sql(pressure_features(config)).items())
    contacts = (
        f"SELECT customer_id, {recent}, count(*) FILTER (WHERE contacted) AS contacts_total, "
        "count(*) FILTER (WHERE NOT contacted) AS holdouts_total "
        "FROM pit_decisions WHERE offer_id IS NOT NULL GROUP BY customer_id"
    )
    reactions = (
        "SELECT customer_id, "
        f"count(DISTINCT decision_id) FILTER (WHERE contacted AND outcome IN {_in(POSITIVE_OUTCOMES)}) "
        "AS contact_responses, "
        "count(DISTINCT decision_id) FILTER (WHERE contacted AND outcome = 'conversion') AS contact_conversions, "
        "count(DISTINCT decision_id) FILTER (WHERE NOT contacted AND outcome = 'conversion') AS holdout_conversions, "
        f"count(DISTINCT decision_id) FILTER (WHERE contacted AND outcome IN {_in(NEGATIVE_OUTCOMES)}) "
        "AS contact_complaints "
        "FROM pit_responses GROUP BY customer_id"
    )
    signals = ", ".join(f"count(*) FILTER (WHERE type IN {_in(types)}) AS {stem}_total"
                        for stem, types in SIGNALS.items())
    care = (
        f"SELECT customer_id, count(*) AS _all_interactions, {signals}, "
        f"count(*) FILTER (WHERE type = {literal(COMPLAINT_TYPE)} AND age_days <= {VALUE_WINDOW_DAYS}) "
        f"AS complaints_{VALUE_WINDOW_DAYS}d, "
        f"avg(value) FILTER (WHERE type = {literal(REVIEW_TYPE)}) AS review_rating_avg "
        "FROM pit_interactions GROUP BY customer_id"
    )
    return GroupQuery(
        ctes=[("g_contacts", contacts), ("g_reactions", reactions), ("g_care", care)],
        joined=["g_contacts", "g_reactions", "g_care"],
        derived={f"{stem}_share": f"{stem}_total / nullif(_all_interactions, 0)" for stem in SIGNALS},
    )
