"""Personalisation: the category a customer looked at most but did not buy.

Views are ``web.view.category.<category>`` interactions; ties go to the most
recently viewed category, then the alphabetically first.
"""

from __future__ import annotations

from nextbest.features.query import GroupQuery

from nextbest.config import NextbestConfig

VIEW_PREFIX = "web.view.category."


def query(config: NextbestConfig) -> GroupQuery:
    """Most viewed, not bought category per customer."""
    days = config.features.interest_days
    views = (
        "SELECT customer_id, split_part(type, '.', 4) AS category, count(*) AS views, min(age_days) AS last_age "
        f"FROM pit_interactions WHERE starts_with(type, '{VIEW_PREFIX}') AND age_days <= {days} "
        "GROUP BY customer_id, category"
    )
    ranked = (
        "SELECT customer_id, category, row_number() OVER "
        "(PARTITION BY customer_id ORDER BY views DESC, last_age, category) AS rn FROM g_views v "
        "WHERE category <> '' AND NOT EXISTS (SELECT 1 FROM pit_transactions t WHERE t.customer_id = v.customer_id "
        f"AND t.category = v.category AND t.age_days <= {days})"
    )
    pick = "SELECT customer_id, category AS interest_category FROM g_interest_ranked WHERE rn = 1"
    return GroupQuery(
        ctes=[("g_views", views), ("g_interest_ranked", ranked), ("g_interest", pick)],
        joined=["g_interest"],
    )
