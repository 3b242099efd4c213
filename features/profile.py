"""Profile and geography: age, life stage, gender, tenure, urbanity, region, distance.

All read from the customer row ``c`` (never first name, e-mail, phone, address or
postcode); tenure falls back to the first order or interaction.
"""

from __future__ import annotations

from nextbest.features.pit import AS_OF, AS_OF_DATE
from nextbest.features.query import GroupQuery, literal
from nextbest.features.registry import life_stage_labels

from nextbest.config import NextbestConfig

AGE = (f"CASE WHEN c.birth_date < {AS_OF_DATE} "
       f"THEN date_diff('day', c.birth_date, {AS_OF_DATE}) / 365.25 END")


def query(config: NextbestConfig) -> GroupQuery:
    """Profile and geography as expressions over the customer row."""
    edges = sorted(config.features.age_bands)
    labels = life_stage_labels(config.features.age_bands)
    age = f"({AGE})"
    stage = f"CASE WHEN {age} IS NULL THEN NULL " + " ".join(
        f"WHEN {age} < {e} THEN {literal(label)}" for e, label in zip(edges, labels)
    ) + f" ELSE {literal(labels[-1])} END"
    return GroupQuery(
        derived={
            "age": AGE,
            "life_stage": stage,
            "gender": "c.gender",
            "urbanity": "c.urbanity",
            "region": "c.region",
            "distance_to_store_km": "c.distance_to_store_km",
            "tenure_days": (
                f"greatest(0.0, coalesce(date_diff('millisecond', CAST(c.member_since AS TIMESTAMP), {AS_OF}) "
                "/ 86400000.0, greatest(_first_order_age, _first_interaction_age)))"
            ),
        }
    )
