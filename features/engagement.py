"""Engagement: interaction counts, recency, e-mail rates, the decayed engagement score,
its trend and the journey stage.

Interactions are first aggregated per customer and type (which fixes the
family and its weight), then per customer: distinct types become plain counts
and the heavy scan happens once.
"""

from __future__ import annotations

from nextbest.features.query import GroupQuery, literal
from nextbest.features.registry import lowest_stage

from nextbest.config import JOURNEY_STAGES, NextbestConfig

EMAIL_CHANNEL = "email"


def trend_coefficients(weeks: int) -> list[float]:
    """OLS slope weights: ``slope = sum(c[x] * y[x])`` for ``x = 0..weeks-1`` (oldest first)."""
    mean = (weeks - 1) / 2
    ss = sum((x - mean) ** 2 for x in range(weeks))
    return [(x - mean) / ss for x in range(weeks)]


def query(config: NextbestConfig) -> GroupQuery:
    """The engagement CTEs (two-level aggregation) and the rate, score, trend and stage expressions."""
    fc = config.features
    windows = sorted(fc.windows_days)
    longest = windows[-1]
    h = fc.engagement_half_life_days
    weeks = fc.engagement_trend_weeks
    # Level 1: one row per customer and interaction type (the heavy scan: keep per-row work minimal).
    per_type = ["customer_id", "type", "min(age_days) AS last_age", "max(age_days) AS first_age"]
    per_type += [f"count(*) FILTER (WHERE age_days <= {w}) AS n_{w}" for w in windows]
    # Decay from T is computed once per row; the score at the end of week j back is
    # sum over events before it of 0.5^((age - 7j) / h) = 2^(7j / h) * sum 0.5^(age / h).
    per_type += [
        f"sum(pow(0.5, age_days / {h!r})) FILTER (WHERE age_days > {7 * j}) AS decay_{j}" for j in range(weeks)
    ]
    level1 = f"SELECT {', '.join(per_type)} FROM pit_interactions GROUP BY customer_id, type"

    # Level 2: one row per customer; the family (and its weight) follows from the type.
    family = "split_part(type, '.', 1)"
    weight = f"CASE {family} " + " ".join(
        f"WHEN {literal(fam)} THEN {float(fc.engagement_weights.get(fam, 0.0))!r}" for fam in fc.families
    ) + " ELSE 0.0 END"
    cols = ["customer_id"]
    for w in windows:
        cols.append(f"sum(n_{w}) AS interactions_{w}d")
        cols.append(f"count(*) FILTER (WHERE n_{w} > 0) AS interaction_types_{w}d")
        cols += [f"sum(n_{w}) FILTER (WHERE {family} = {literal(fam)}) AS {fam}_interactions_{w}d"
                 for fam in fc.families]
    cols += [
        "min(last_age) AS days_since_last_interaction",
        "max(first_age) AS _first_interaction_age",
        f"sum(n_{longest}) FILTER (WHERE type = 'email.open') AS _email_opens",
        f"sum(n_{longest}) FILTER (WHERE type = 'email.click') AS _email_clicks",
        "min(last_age) FILTER (WHERE type = 'email.newsletter_signup') AS _newsletter_interaction_age",
    ]
    cols += [f"sum({weight} * decay_{j}) * {2.0 ** (7 * j / h)!r} AS _score_{j}" for j in range(weeks)]
    level2 = f"SELECT {', '.join(cols)} FROM g_engagement_types GROUP BY customer_id"

    contacts = (
        f"SELECT customer_id, count(*) AS _email_contacts FROM pit_decisions "
        f"WHERE contacted AND channel = {literal(EMAIL_CHANNEL)} AND age_days <= {longest} GROUP BY customer_id"
    )

    def rate(col: str) -> str:
        return f"CASE WHEN _email_contacts > 0 THEN least(1.0, coalesce({col}, 0) / _email_contacts) END"

    score = "coalesce(_score_0, 0.0)"
    coefs = trend_coefficients(weeks)  # x = weeks-1-j
    trend = " + ".join(f"({coefs[weeks - 1 - j]!r}) * coalesce(_score_{j}, 0.0)" for j in range(weeks))
    by_threshold = sorted(
        ((t, s) for s, t in fc.stage_thresholds.items()), key=lambda ts: (-ts[0], -JOURNEY_STAGES.index(ts[1]))
    )
    stage = "CASE " + " ".join(f"WHEN {score} >= {t!r} THEN {literal(s)}" for t, s in by_threshold)
    stage += f" ELSE {literal(lowest_stage(config))} END"
    return GroupQuery(
        ctes=[("g_engagement_types", level1), ("g_engagement", level2), ("g_email_contacts", contacts)],
        joined=["g_engagement", "g_email_contacts"],
        derived={
            "email_open_rate": rate("_email_opens"),
            "email_click_rate": rate("_email_clicks"),
            "engagement_score": score,
            "engagement_trend": trend,
            "journey_stage": stage,
        },
    )
