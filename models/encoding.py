"""Turn a candidate/training frame into the float matrix LightGBM reads.

LightGBM is fastest on a contiguous float matrix with categorical columns given
as small non-negative integer codes. :class:`FrameEncoder` learns the category
levels once at fit time and applies them unchanged afterwards, so a level that
appears only at scoring time becomes *missing* (NaN) rather than silently taking
another level's code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from nextbest.errors import BadInputError


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


class FrameEncoder(TransformerMixin, BaseEstimator):
    """Encode a DataFrame into a float64 matrix with categorical codes.

    Parameters
    ----------
    columns
        Columns to encode, in this order; ``None`` uses every column of the
        frame passed to :meth:`fit`.
    categorical
        Columns to treat as categorical on top of those detected automatically
        (any non-numeric, non-boolean dtype).
    defaults
        Value for a column that is absent from the frame at transform time
        (e.g. offer-history counts of a candidate that was never shown the
        offer). A column that is absent and has no default is an error.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Encoded columns, in matrix order.
    categories_ : dict[str, list[str]]
        Levels of each categorical column; code ``i`` is ``categories_[col][i]``.
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        defaults: dict[str, float] | None = None,
    ) -> None:
        self.columns = columns
        self.categorical = categorical
        self.defaults = defaults

    def fit(self, X: pd.DataFrame, y: object = None) -> FrameEncoder:
        columns = list(self.columns) if self.columns is not None else list(X.columns)
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise BadInputError(f"training frame lacks column(s) {missing}; build the training set with them")
        forced = set(self.categorical)
        self.categories_: dict[str, list[str]] = {}
        for c in columns:
            if c in forced or _is_categorical(X[c]):
                levels = pd.Series(X[c].dropna().astype(str).unique())
                self.categories_[c] = sorted(levels.tolist())
        self.feature_names_in_ = np.asarray(columns, dtype=object)
        self.n_features_in_ = len(columns)
        return self

    @property
    def categorical_indices_(self) -> list[int]:
        """Matrix positions of the categorical columns (LightGBM ``categorical_feature``)."""
        return [i for i, c in enumerate(self.feature_names_in_) if c in self.categories_]

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        defaults = self.defaults or {}
        missing = [c for c in self.feature_names_in_ if c not in X.columns and c not in defaults]
        if missing:
            raise BadInputError(
                f"candidate rows lack feature column(s) {missing}; pass the feature snapshot columns the model was trained on"
            )
        out = np.empty((len(X), self.n_features_in_), dtype=np.float64)
        for i, c in enumerate(self.feature_names_in_):
            if c not in X.columns:
                out[:, i] = defaults[c]
            elif c in self.categories_:
                codes = pd.Categorical(X[c].astype("string"), categories=self.categories_[c]).codes
                out[:, i] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, i] = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_in_.copy()
