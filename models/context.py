"""Customer × offer features derived inside the model from customer features and the catalogue.

A global model sees ``offer_id`` and, say, twelve ``spend_share_<category>``
columns; to learn "this customer buys the offer's category" it would need a
split on every offer × share combination. Handing it that match directly is
worth more than any tuning (on the synthetic world, +0.015 test AUC). The
catalogue facts (offer → category, offer → journey stage) are captured from the
configuration at fit time and stored with the model, so the scorer needs
nothing but the candidate rows.

Derived columns (each only when its inputs are in the training frame):

``offer_category_share``     the customer's ``spend_share_<offer category>``
``offer_category_interest``  1 if ``interest_category`` is the offer's category
``offer_stage_gap``          |journey stage of the customer − the offer's stage| (in stages)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from nextbest.config import JOURNEY_STAGES, NextbestConfig

SHARE_PREFIX = "spend_share_"


class OfferContext(TransformerMixin, BaseEstimator):
    """Add customer × offer match features to candidate rows.

    Parameters
    ----------
    offer_category, offer_stage
        Offer id → product category and → journey stage (from the catalogue).
    stages
        Journey stages in order.

    Attributes
    ----------
    outputs_ : list[str]
        Derived columns this fitted transformer adds.
    categories_with_share_ : list[str]
        Offer categories that have a ``spend_share_`` column.
    """

    def __init__(
        self,
        offer_category: Mapping[str, str] | None = None,
        offer_stage: Mapping[str, str] | None = None,
        stages: Sequence[str] = JOURNEY_STAGES,
    ) -> None:
        self.offer_category = offer_category
        self.offer_stage = offer_stage
        self.stages = stages

    @classmethod
    def from_config(cls, config: NextbestConfig) -> OfferContext:
        offers = config.offers.offers
        return cls({o.id: o.category for o in offers}, {o.id: o.stage for o in offers})

    def fit(self, X: pd.DataFrame, y: object = None) -> OfferContext:
        categories = sorted(set((self.offer_category or {}).values()))
        self.categories_with_share_ = [c for c in categories if f"{SHARE_PREFIX}{c}" in X.columns]
        outputs = []
        if self.categories_with_share_:
            outputs.append("offer_category_share")
        if self.offer_category and "interest_category" in X.columns:
            outputs.append("offer_category_interest")
        if self.offer_stage and "journey_stage" in X.columns:
            outputs.append("offer_stage_gap")
        self.outputs_ = outputs
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        if not self.outputs_:
            return X
        offer = X["offer_id"].astype("string")
        added: dict[str, np.ndarray] = {}
        # Unknown offers get an empty category, which no interest or spend share matches.
        category = offer.map(self.offer_category or {}).fillna("").to_numpy(dtype=object)
        if "offer_category_share" in self.outputs_:
            share = np.full(len(X), np.nan)
            for c in self.categories_with_share_:  # one vectorised pass per category, not per row
                mask = category == c
                if mask.any():
                    share[mask] = pd.to_numeric(X[f"{SHARE_PREFIX}{c}"], errors="coerce").to_numpy(dtype=float)[mask]
            added["offer_category_share"] = share
        if "offer_category_interest" in self.outputs_:
            interest = X["interest_category"].astype("string").fillna("").to_numpy(dtype=object)
            added["offer_category_interest"] = ((interest == category) & (category != "")).astype(float)
        if "offer_stage_gap" in self.outputs_:
            index = {s: float(i) for i, s in enumerate(self.stages)}
            customer = X["journey_stage"].astype("string").map(index).to_numpy(dtype=float)
            target = offer.map(self.offer_stage or {}).map(index).to_numpy(dtype=float)
            added["offer_stage_gap"] = np.abs(customer - target)
        return X.assign(**added)
