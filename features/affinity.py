"""Category affinity: how much of a customer's browsing and buying falls in each offer category.

Spend shares (:mod:`.baskets`) only see what a customer bought in the last year,
a handful of order lines for most customers; browsing says the same thing more
often. Every *category-tagged* event counts once - an order line, or an
interaction whose type names a category after one of :data:`CATEGORY_ACTIONS`
(``web.view.category.shoes``, ``web.cart_add.shoes``, ...) - over the customer's
whole history. The share is smoothed towards the uniform share so that a
customer with two events is not "100 % shoes"::

    category_affinity_<k> = (events in k + alpha / K) / (category events + alpha)

with ``alpha`` = :data:`PRIOR_EVENTS` and ``K`` the number of basket categories
(the offer categories plus ``other``). A customer without events gets ``1 / K``
everywhere. The prior is a constant, not the population's mix, so a one-customer
build (the 360° view, serving) gives the same value as the nightly snapshot.
"""

from __future__ import annotations

from nextbest.features.query import GroupQuery, literal
from nextbest.features.registry import OTHER_CATEGORY, basket_categories

from nextbest.config import NextbestConfig

#: Interaction type prefixes whose remainder is a product category.
CATEGORY_ACTIONS: tuple[str, ...] = (
    "web.view.category.", "web.view.product.", "web.cart_add.", "web.wishlist_add.", "app.screen.category.",
)
#: Pseudo-events of the uniform prior (see the module docstring).
PRIOR_EVENTS = 5.0


def affinity_categories(config: NextbestConfig) -> tuple[str, ...]:
    """Categories with an affinity feature: the offer categories (sorted)."""
    return tuple(c for c in basket_categories(config) if c != OTHER_CATEGORY)


def query(config: NextbestConfig) -> GroupQuery:
    """Category-tagged events per customer and category, then the smoothed shares."""
    prefix = " ".join(
        f"WHEN starts_with(type, {literal(p)}) THEN substr(type, {len(p) + 1})" for p in CATEGORY_ACTIONS
    )
    events = (
        f"SELECT customer_id, CASE {prefix} END AS category FROM pit_interactions "
        f"WHERE {' OR '.join(f'starts_with(type, {literal(p)})' for p in CATEGORY_ACTIONS)} "
        "UNION ALL SELECT customer_id, category FROM pit_transactions"
    )
    cats = affinity_categories(config)
    counts = ", ".join(f"count(*) FILTER (WHERE category = {literal(c)}) AS _affinity_n_{c}" for c in cats)
    per_customer = (
        f"SELECT customer_id, count(*) FILTER (WHERE category <> '') AS category_events, {counts} "
        "FROM g_affinity_events GROUP BY customer_id"
    )
    prior = PRIOR_EVENTS / len(basket_categories(config))
    return GroupQuery(
        ctes=[("g_affinity_events", events), ("g_affinity", per_customer)],
        joined=["g_affinity"],
        derived={
            f"category_affinity_{c}": (
                f"(coalesce(_affinity_n_{c}, 0) + {prior!r}) / (coalesce(category_events, 0) + {PRIOR_EVENTS!r})"
            )
            for c in cats
        },
    )
