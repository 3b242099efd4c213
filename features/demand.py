"""Category demand: which categories everyone is browsing and buying *now*, against the year.

Demand for a category moves with the season (garden in spring, electronics before
Christmas), and an offer in a category that is in season converts better. A model
that only sees a customer's own history cannot tell the season: a time-split test
period comes after every training row, so neither a date nor a per-offer effect
learnt on earlier months carries over. The market tells it. Over every customer's
order lines (what people buy; browsing follows taste more than the season)::

    category_demand_<k> = log(share of k in the last R days) - log(share of k in the last 365 days)

with ``R`` = ``features.demand_recent_days`` and each share smoothed by
:data:`PRIOR_EVENTS_PER_CATEGORY` pseudo-events per basket category, so a small or
new warehouse reads 0 ("usual demand"). Positive: the category takes more of the
market's attention than it usually does.

The value is the same for every customer on a date. It reads the ``pit_market_*``
views, which are not restricted to the customers being built, so a one-customer
build gives the nightly snapshot's value. The response model turns the columns into
one candidate-level number, ``offer_category_demand`` (:mod:`nextbest.models.context`).
"""

from __future__ import annotations

from nextbest.config import NextbestConfig
from nextbest.features.affinity import affinity_categories
from nextbest.features.query import GroupQuery, literal
from nextbest.features.registry import DEMAND_PREFIX, VALUE_WINDOW_DAYS, basket_categories

#: Pseudo-events per basket category added to both windows' counts.
PRIOR_EVENTS_PER_CATEGORY = 5.0


def query(config: NextbestConfig) -> GroupQuery:
    """One row of recent and yearly counts per category, cross-joined to every customer."""
    recent = config.features.demand_recent_days
    events = f"SELECT category, age_days FROM pit_market_transactions WHERE age_days <= {VALUE_WINDOW_DAYS}"
    cats = affinity_categories(config)
    counts = [
        f"count(*) FILTER (WHERE age_days <= {recent}) AS _demand_recent",
        "count(*) AS _demand_year",
        *(f"count(*) FILTER (WHERE category = {literal(c)} AND age_days <= {recent}) AS _demand_recent_{c}"
          for c in cats),
        *(f"count(*) FILTER (WHERE category = {literal(c)}) AS _demand_year_{c}" for c in cats),
    ]
    a = PRIOR_EVENTS_PER_CATEGORY
    total = a * len(basket_categories(config))

    def share(window: str, c: str) -> str:
        return f"ln(({window}_{c} + {a!r}) / ({window} + {total!r}))"

    return GroupQuery(
        ctes=[("g_demand_events", events), ("g_demand", f"SELECT {', '.join(counts)} FROM g_demand_events")],
        crossed=["g_demand"],
        derived={
            f"{DEMAND_PREFIX}{c}": f"{share('_demand_recent', c)} - {share('_demand_year', c)}" for c in cats
        },
    )
