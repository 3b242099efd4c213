"""Expected revenue of a response, per candidate."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone

from nextbest.models.encoding import Levels
from nextbest.models.lgbm import LGBMValueRegressor


class ResponseValueModel(RegressorMixin, BaseEstimator):
    """Revenue given a response: a LightGBM regressor on converted rows, or offer means.

    Fit it on the rows that converted only (``y`` = their revenue). When there
    are fewer than ``min_rows`` of them, or revenue does not vary within an
    offer (a fixed price), the per-offer mean revenue is the better estimate and
    no regressor is trained.

    Parameters
    ----------
    estimator
        Regressor for the revenue; default :class:`LGBMValueRegressor` with
        small trees.
    offer_column
        Column holding the offer id.
    prior
        Revenue to assume for offers with no converted row (the catalogue's
        ``value``), so an offer that never converted is not worth zero.
    min_rows
        Minimum converted rows to train the regressor.

    Attributes
    ----------
    offer_means_ : dict[str, float]
        Mean revenue per offer (observed, else the prior).
    global_mean_ : float
        Mean revenue over all converted rows (offers in neither of the above).
    estimator_ : fitted regressor or None
    """

    def __init__(
        self,
        estimator: BaseEstimator | None = None,
        offer_column: str = "offer_id",
        prior: Mapping[str, float] | None = None,
        min_rows: int = 500,
    ) -> None:
        self.estimator = estimator
        self.offer_column = offer_column
        self.prior = prior
        self.min_rows = min_rows

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> ResponseValueModel:
        y = np.asarray(y, dtype=np.float64)
        observed = pd.Series(y).groupby(X[self.offer_column].astype("string").to_numpy()).mean()
        self.offer_means_: dict[str, float] = {**dict(self.prior or {}), **{str(k): float(v) for k, v in observed.items()}}
        self.global_mean_ = float(y.mean()) if len(y) else float(np.mean(list(self.offer_means_.values()) or [0.0]))
        within_offer_sd = pd.Series(y).groupby(X[self.offer_column].astype("string").to_numpy()).std().fillna(0).max()
        self.estimator_ = None
        if len(y) >= self.min_rows and within_offer_sd > 1e-9:
            est = self.estimator if self.estimator is not None else LGBMValueRegressor(
                n_estimators=200, num_leaves=15, min_child_samples=50, early_stopping_rounds=None
            )
            self.estimator_ = clone(est).fit(X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.estimator_ is not None:
            return np.maximum(self.estimator_.predict(X), 0.0)
        # Offer mean by the row's offer code; unknown offers (and unknown means) get the global mean.
        cached = self.__dict__.get("_means_cache")
        if cached is None or cached[0] is not self.offer_means_:
            means = np.array([*self.offer_means_.values(), np.nan], dtype=np.float64)
            cached = (self.offer_means_, Levels.of(list(self.offer_means_)), means)
            self.__dict__["_means_cache"] = cached
        _, offers, means = cached
        out = means[offers.codes_of(X[self.offer_column])]
        return np.where(np.isnan(out), self.global_mean_, out)
