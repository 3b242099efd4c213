"""Value: RFM, average order value, margin, category breadth and lifetime totals.

Read from orders (order lines collapsed, :mod:`.pit`) only, so value stays a
signal separate from engagement. ``clv_12m`` is added by the fitted CLV model
(:mod:`.clv`).
"""

from __future__ import annotations

from nextbest.features.query import GroupQuery
from nextbest.features.registry import VALUE_WINDOW_DAYS

from nextbest.config import NextbestConfig


def query(config: NextbestConfig) -> GroupQuery:
    """RFM, totals and the order-count event from ``pit_orders``."""
    fc = config.features
    v = VALUE_WINDOW_DAYS
    orders = (
        "SELECT customer_id, "
        "min(age_days) AS recency_days, "
        f"count(*) FILTER (WHERE age_days <= {v}) AS frequency_{v}d, "
        f"sum(amount) FILTER (WHERE age_days <= {v}) AS monetary_{v}d, "
        f"sum(margin) FILTER (WHERE age_days <= {v}) AS margin_{v}d, "
        "count(*) AS orders_total, sum(amount) AS monetary_total, max(age_days) AS _first_order_age, "
        f"bool_or(order_number = {fc.order_count_trigger} AND age_days <= {fc.order_count_recent_days}) "
        "AS order_count_crossed "
        "FROM pit_orders GROUP BY customer_id"
    )
    return GroupQuery(
        ctes=[("g_value", orders)],
        joined=["g_value"],
        derived={f"avg_order_value_{v}d": f"monetary_{v}d / nullif(frequency_{v}d, 0)"},
    )
