"""Basket clusters: k-means on each customer's category spend shares.

The shares are SQL features (one per offer category, plus ``other``); the
:class:`BasketClusterer` is fitted on the training snapshot, saved as JSON with
the feature set and applied unchanged afterwards.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from nextbest.features.query import GroupQuery, literal
from nextbest.features.registry import NO_BASKET, OTHER_CATEGORY, VALUE_WINDOW_DAYS, basket_categories
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted

from nextbest.config import NextbestConfig


def query(config: NextbestConfig) -> GroupQuery:
    """Spend shares per basket category and the category breadth."""
    cats = basket_categories(config)
    named = [c for c in cats if c != OTHER_CATEGORY]
    v = VALUE_WINDOW_DAYS
    bucket = f"CASE WHEN category IN ({', '.join(literal(c) for c in named)}) THEN category ELSE '{OTHER_CATEGORY}' END"
    per_category = (
        "SELECT customer_id, category, sum(amount) AS spend FROM pit_transactions "
        f"WHERE age_days <= {v} GROUP BY customer_id, category"
    )
    shares = ", ".join(
        f"sum(spend) FILTER (WHERE {bucket} = {literal(c)}) / nullif(sum(spend), 0) AS spend_share_{c}" for c in cats
    )
    per_customer = (
        f"SELECT customer_id, count(*) AS category_breadth_{v}d, {shares} FROM g_categories GROUP BY customer_id"
    )
    return GroupQuery(ctes=[("g_categories", per_category), ("g_basket", per_customer)], joined=["g_basket"])


class BasketClusterer(BaseEstimator):
    """k-means on spend shares, with clusters named after their dominant category.

    Parameters
    ----------
    n_clusters
        Clusters wanted; fewer are fitted when there are fewer distinct baskets.
    max_train_rows
        Fit on a random sample of at most this many buyers.
    random_state
        Seed of the sample and of k-means.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Share columns, in order.
    cluster_centers_ : ndarray of shape (n_fitted, n_features)
    cluster_names_ : ndarray of str
        ``<dominant category>`` (``_2``, ``_3`` for repeats), one per centre.
    """

    def __init__(self, n_clusters: int = 6, max_train_rows: int = 100_000, random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: None = None) -> BasketClusterer:
        """Fit on the rows of ``X`` with any spend (all-zero rows are customers without purchases)."""
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        values = X.to_numpy(dtype=float, na_value=0.0)
        buyers = values[values.sum(axis=1) > 0]
        rng = np.random.default_rng(self.random_state)
        if len(buyers) > self.max_train_rows:
            buyers = buyers[rng.choice(len(buyers), self.max_train_rows, replace=False)]
        k = min(self.n_clusters, len(np.unique(buyers, axis=0)))
        if k == 0:
            centers = np.empty((0, values.shape[1]))
        elif k == 1:
            centers = buyers.mean(axis=0, keepdims=True)
        else:
            centers = KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit(buyers).cluster_centers_
        # Order by dominant category, strongest first, so names and order do not depend on k-means' labels.
        dominant = centers.argmax(axis=1) if len(centers) else np.empty(0, dtype=int)
        order = np.lexsort((-centers.max(axis=1) if len(centers) else np.empty(0), dominant))
        self.cluster_centers_ = centers[order]
        seen: Counter[str] = Counter()
        names: list[str] = []
        for idx in dominant[order]:
            base = str(self.feature_names_in_[idx]).removeprefix("spend_share_")
            seen[base] += 1
            names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
        self.cluster_names_ = np.asarray(names, dtype=object)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Name of the nearest centre for each row; ``'none'`` for rows without spend."""
        check_is_fitted(self, "cluster_centers_")
        values = X[list(self.feature_names_in_)].to_numpy(dtype=float, na_value=0.0)
        out = np.full(len(values), NO_BASKET, dtype=object)
        buyers = values.sum(axis=1) > 0
        if len(self.cluster_centers_) and buyers.any():
            # |x - c|^2 up to the per-row constant |x|^2: (n, k) memory, not (n, k, features).
            c = self.cluster_centers_
            d = (c**2).sum(axis=1)[None, :] - 2.0 * values[buyers] @ c.T
            out[buyers] = self.cluster_names_[d.argmin(axis=1)]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters and learned state (no customer data)."""
        check_is_fitted(self, "cluster_centers_")
        return {
            "params": self.get_params(),
            "feature_names": list(self.feature_names_in_),
            "centers": self.cluster_centers_.round(12).tolist(),
            "names": list(self.cluster_names_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BasketClusterer:
        """Inverse of :meth:`to_dict`."""
        est = cls(**data["params"])
        est.feature_names_in_ = np.asarray(data["feature_names"], dtype=object)
        est.cluster_centers_ = np.asarray(data["centers"], dtype=float).reshape(-1, len(data["feature_names"]))
        est.cluster_names_ = np.asarray(data["names"], dtype=object)
        return est
