"""The interaction vocabulary: ``family.action[.detail]`` types the world emits.

Organic activity picks a family per event (the customer's mix: app users use the app,
near-store customers visit, grumpy customers call the service desk), then an action by
the family's weights, then - for category actions - a category by the customer's
affinity. With the catalogue's categories this gives 100+ distinct types; the event
rate, the family mix and the category views are how latent engagement, grumpiness and
category affinity become observable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Interaction families, in a fixed order (indices are used in arrays).
FAMILIES: tuple[str, ...] = ("web", "app", "email", "store", "service", "social")

#: Per family: (action, weight, per-category?) for organic events. Weight 0 = only
#: emitted by other processes (orders, campaign responses, life events).
ACTIONS: dict[str, tuple[tuple[str, float, bool], ...]] = {
    "web": (
        ("view.home", 0.12, False),
        ("view.category", 0.28, True),
        ("view.product", 0.22, True),
        ("search", 0.10, False),
        ("cart_add", 0.08, True),
        ("wishlist_add", 0.04, True),
        ("login", 0.08, False),
        ("account", 0.03, False),
        ("store_locator", 0.02, False),
        ("view.offer", 0.03, False),
        ("checkout", 0.0, False),
    ),
    "app": (
        ("open", 0.35, False),
        ("screen.home", 0.15, False),
        ("screen.category", 0.25, True),
        ("screen.cart", 0.08, False),
        ("screen.account", 0.05, False),
        ("scan", 0.05, False),
        ("screen.offers", 0.07, False),
        ("push_open", 0.0, False),
    ),
    "email": (
        ("newsletter_open", 0.6, False),
        ("newsletter_click", 0.25, False),
        ("preferences", 0.05, False),
        ("forward", 0.10, False),
        ("open", 0.0, False),
        ("click", 0.0, False),
        ("newsletter_signup", 0.0, False),
    ),
    "store": (
        ("visit", 0.62, False),
        ("click_and_collect", 0.1, False),
        ("return", 0.08, False),
        ("event", 0.05, False),
        ("fitting_room", 0.15, False),
    ),
    "service": (
        ("call", 0.3, False),
        ("chat", 0.27, False),
        ("faq", 0.18, False),
        ("complaint", 0.1, False),
        ("return_request", 0.08, False),
        ("delivery_query", 0.07, False),
    ),
    "social": (
        ("review", 0.3, False),
        ("share", 0.2, False),
        ("follow", 0.1, False),
        ("like", 0.3, False),
        ("mention", 0.1, False),
    ),
}


@dataclass(frozen=True)
class Vocabulary:
    """Interaction types for a category list, with the lookup tables sampling needs.

    Attributes
    ----------
    types
        Every type string; an event's type is stored as an index into it.
    action_cdf
        ``(n_families, max_actions)`` cumulative organic action weights per family.
    table
        ``(n_families, max_actions, n_categories)`` type index of (family, action, category);
        category is ignored (same index) for actions without a category.
    """

    categories: tuple[str, ...]
    types: tuple[str, ...]
    action_cdf: np.ndarray
    table: np.ndarray

    @classmethod
    def build(cls, categories: tuple[str, ...]) -> Vocabulary:
        """Vocabulary of the world's categories."""
        n_fam = len(FAMILIES)
        max_a = max(len(a) for a in ACTIONS.values())
        types: list[str] = []
        table = np.zeros((n_fam, max_a, len(categories)), dtype=np.int32)
        cdf = np.ones((n_fam, max_a))
        for f, fam in enumerate(FAMILIES):
            weights = np.array([w for _, w, _ in ACTIONS[fam]])
            cdf[f, : len(weights)] = np.cumsum(weights) / weights.sum()
            for a, (action, _, per_category) in enumerate(ACTIONS[fam]):
                if per_category:
                    for c, cat in enumerate(categories):
                        table[f, a, c] = len(types)
                        types.append(f"{fam}.{action}.{cat}")
                else:
                    table[f, a, :] = len(types)
                    types.append(f"{fam}.{action}")
        return cls(categories=categories, types=tuple(types), action_cdf=cdf, table=table)

    def index(self, type_: str) -> int:
        """Index of a type string (``ValueError`` if it is not in the vocabulary)."""
        return self.types.index(type_)
