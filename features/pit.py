"""Point-in-time views of the warehouse tables: the one place that applies ``ts < as_of``.

Every feature group reads these common table expressions, never the raw tables,
so no feature can see data at or after the as-of time. Each view also carries
``age_days``, the (fractional) days between an event and the as-of time, which
the groups compare with their windows: an event is in an ``N``-day window when
``age_days <= N``.

The SQL binds ``$as_of`` (a ``TIMESTAMP``) and, when the build is restricted to
some customers, ``$customer_ids`` (a ``BIGINT[]``).
"""

from __future__ import annotations

from nextbest.config import NextbestConfig

AS_OF = "CAST($as_of AS TIMESTAMP)"
AS_OF_DATE = "CAST($as_of AS DATE)"


def age_days(column: str, at: str = AS_OF) -> str:
    """SQL for the days between ``column`` and the as-of time ``at`` (fractional, > 0 before it)."""
    return f"(date_diff('millisecond', {column}, {at}) / 86400000.0)"


def customer_columns(config: NextbestConfig) -> tuple[str, ...]:
    """``customers`` columns the features read: profile, geography, each channel's consent and validity,
    and the declared non-personal attributes (personal ones are never read)."""
    base = ("customer_id", "birth_date", "gender", "region", "urbanity", "distance_to_store_km", "member_since",
            "preferred_channel")
    fields = [f for ch in config.channels.channels for f in (ch.consent_field, ch.validity_field) if f]
    attributes = [a.name for a in config.features.attributes if not a.personal]
    return tuple(dict.fromkeys((*base, *fields, *attributes)))


def pit_ctes(config: NextbestConfig, *, filtered: bool) -> list[tuple[str, str]]:
    """The point-in-time CTEs, as ``(name, select)`` pairs in dependency order.

    Parameters
    ----------
    config
        Names the customer columns to read (consent and validity fields).
    filtered
        Restrict every view to ``$customer_ids``.
    """
    in_ids = "customer_id IN (SELECT UNNEST(CAST($customer_ids AS BIGINT[])))"
    only = f" AND {in_ids}" if filtered else ""
    cols = ", ".join(customer_columns(config))
    return [
        # The customers table is current state (no history): a customer is in the snapshot once
        # they joined; unknown member_since counts as "always".
        ("pit_customers",
         f"SELECT {cols} FROM customers WHERE (member_since IS NULL OR CAST(member_since AS TIMESTAMP) < {AS_OF}){only}"),
        ("pit_interactions",
         f"SELECT customer_id, ts, type, split_part(type, '.', 1) AS family, value, {age_days('ts')} AS age_days "
         f"FROM interactions WHERE ts < {AS_OF}{only}"),
        # Every customer's order lines, also in a build restricted to some customers: market-level
        # features (category demand) describe everyone, and a one-customer build must agree
        # with the nightly snapshot.
        ("pit_market_transactions",
         f"SELECT customer_id, ts, order_id, coalesce(category, 'unknown') AS category, "
         f"coalesce(amount, 0.0) AS amount, coalesce(margin, 0.0) AS margin, {age_days('ts')} AS age_days "
         f"FROM transactions WHERE ts < {AS_OF}"),
        ("pit_transactions", "SELECT * FROM pit_market_transactions" + (f" WHERE {in_ids}" if filtered else "")),
        # Order lines collapse into orders; order_number counts a customer's orders in time order.
        ("pit_orders",
         "SELECT customer_id, order_id, min(ts) AS ts, min(age_days) AS age_days, sum(amount) AS amount, "
         "sum(margin) AS margin, "
         "row_number() OVER (PARTITION BY customer_id ORDER BY min(ts), order_id) AS order_number "
         "FROM pit_transactions GROUP BY customer_id, order_id"),
        ("pit_life_events",
         f"SELECT customer_id, event_type, coalesce(event_date, CAST(ts AS DATE)) AS event_date, "
         f"{age_days('ts')} AS age_days FROM life_events WHERE ts < {AS_OF}{only}"),
        ("pit_decisions",
         f"SELECT decision_id, customer_id, offer_id, channel, coalesce(contacted, false) AS contacted, "
         f"{age_days('ts')} AS age_days FROM decisions WHERE ts < {AS_OF}{only}"),
        # A response counts once both the decision and the response happened before as_of.
        ("pit_responses",
         f"SELECT r.decision_id, d.customer_id, d.offer_id, d.channel, d.contacted, r.outcome, r.ts, "
         f"{age_days('r.ts')} AS age_days "
         f"FROM responses r JOIN pit_decisions d ON d.decision_id = r.decision_id WHERE r.ts < {AS_OF}"),
    ]
