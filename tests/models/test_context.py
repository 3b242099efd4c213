"""OfferContext's category affinity (the customer's own events shrunk towards their demographic cell) and demand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from nextbest.models.context import OfferContext

CATALOGUE = {"a": "shoes", "b": "books"}


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "offer_id": ["a", "a", "b", "b", "zzz"],
            "gender": ["f", "f", "m", "m", "f"],
            "category_events": [10, 30, 0, 20, 5],
            "category_affinity_shoes": [0.6, 0.2, 0.5, 0.1, 0.3],
            "category_affinity_books": [0.1, 0.3, 0.5, 0.4, 0.2],
        }
    )


def test_affinity_is_the_empirical_bayes_posterior() -> None:
    X = rows()
    ctx = OfferContext(CATALOGUE, affinity_cells=("gender",), affinity_prior_events=10.0).fit(X)
    assert ctx.cell_levels_ == [["f", "m"]]
    # Pooled, event-weighted shoes share of the women (10·0.6 + 30·0.2 + 5·0.3) / 45, shrunk
    # by 200 pseudo-events towards everyone's (13.5 + 0 + 20·0.1) / 65.
    everyone = (6 + 6 + 1.5 + 2) / 65
    women = (13.5 + 200 * everyone) / (45 + 200)
    assert ctx.affinity_prior_[0, 1] == pytest.approx(women)  # columns: books, shoes (sorted)
    got = ctx.transform(X)["offer_category_affinity"].to_numpy()
    assert got[0] == pytest.approx((10 * 0.6 + 10 * women) / 20)
    men_books = ((0 + 8) + 200 * (1 + 9 + 0 + 8 + 1) / 65) / (20 + 200)
    assert got[2] == pytest.approx(men_books)  # no events of their own: the cell's affinity
    assert np.isnan(got[4])  # an offer the catalogue does not know


def test_unseen_cell_takes_everyones_affinity_and_clone_refits() -> None:
    ctx = clone(OfferContext(CATALOGUE, affinity_cells=("gender",), affinity_prior_events=10.0)).fit(rows())
    new = rows().assign(gender="x", category_events=0)
    got = ctx.transform(new)["offer_category_affinity"].to_numpy()
    assert got[0] == pytest.approx(ctx.affinity_prior_[-1, 1])


def test_without_cell_columns_the_own_affinity_is_used() -> None:
    X = rows().drop(columns=["gender"])
    ctx = OfferContext(CATALOGUE).fit(X)
    assert ctx.affinity_prior_ is None
    np.testing.assert_allclose(ctx.transform(X)["offer_category_affinity"].to_numpy()[:4], [0.6, 0.2, 0.5, 0.4])


def test_demand_is_the_offer_categorys_market_demand() -> None:
    X = rows().assign(category_demand_shoes=0.2, category_demand_books=-0.1)
    ctx = OfferContext(CATALOGUE).fit(X)
    assert ctx.categories_with_demand_ == ["books", "shoes"]
    out = ctx.transform(X)
    got = out["offer_category_demand"].to_numpy()
    np.testing.assert_allclose(got[:4], [0.2, 0.2, -0.1, -0.1])
    # The raw market columns are a calendar to a learner: only the offer's own goes on.
    assert not out.columns.str.startswith("category_demand_").any()
    assert np.isnan(got[4])  # an offer the catalogue does not know
    # The scoring service's customer x offer table gives what transform gives each row.
    table = ctx.offer_table(X, ["b", "a"])["offer_category_demand"]
    np.testing.assert_allclose(table, np.tile([-0.1, 0.2], (len(X), 1)))


def test_bundles_fitted_before_demand_existed_still_transform() -> None:
    ctx = OfferContext(CATALOGUE).fit(rows())
    del ctx.__dict__["categories_with_demand_"]
    assert "offer_category_demand" not in ctx.transform(rows().assign(category_demand_shoes=0.2)).columns
