"""Turn a candidate/training frame into the float matrix LightGBM reads.

LightGBM is fastest on a contiguous float matrix with categorical columns given
as small non-negative integer codes. :class:`FrameEncoder` learns the category
levels once at fit time and applies them unchanged afterwards, so a level that
appears only at scoring time becomes *missing* (NaN) rather than silently taking
another level's code.

Encoding sits on the scoring hot path (every candidate row of every decision),
so :meth:`FrameEncoder.transform` avoids per-column pandas work where it can:
all numeric columns are converted in one block copy, and categorical columns
are mapped to codes through look-up tables built once per fitted encoder (a
categorical input maps its few categories, not its rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype
from sklearn.base import BaseEstimator, TransformerMixin

from nextbest.errors import BadInputError

#: Up to this many values, a dict look-up per value is faster than pandas' hash join
#: (the single-customer path of the scoring service encodes ~25 rows).
_SMALL = 64

# Numeric-ness of each dtype seen, so the per-column classification is a dict hit.
_NUMERIC: dict[object, bool] = {}


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _is_numeric_dtype(dtype: object) -> bool:
    """Numeric or boolean, not categorical: the columns one block copy can convert."""
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    known = _NUMERIC.get(dtype)
    if known is None:
        known = _NUMERIC[dtype] = bool(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    return known


@dataclass(frozen=True)
class Levels:
    """A fixed list of text levels, for mapping column values to level codes fast.

    Build once (per fitted estimator) with :meth:`of`; :meth:`codes_of` then maps a
    column of any dtype to codes by its ``astype("string")`` text, so it agrees
    with ``pd.Categorical(series.astype("string"), categories=levels).codes``
    at a fraction of the cost.
    """

    index: pd.Index
    lookup: dict[str, int]

    @classmethod
    def of(cls, levels: Sequence[str]) -> Levels:
        """Levels in code order (code ``i`` is ``levels[i]``)."""
        return cls(pd.Index(list(levels), dtype=object), {v: i for i, v in enumerate(levels)})

    def codes(self, text: np.ndarray) -> np.ndarray:
        """Code of each text value (object array of ``str`` or missing), ``-1`` when not a level."""
        if len(text) <= _SMALL:
            get = self.lookup.get
            return np.fromiter((get(v, -1) for v in text), dtype=np.int64, count=len(text))
        return self.index.get_indexer(text)

    def codes_of(self, series: pd.Series) -> np.ndarray:
        """Level code of each value of ``series`` (-1 = missing or not a level)."""
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            # Map the few categories once; rows then take their category's code.
            categories = dtype.categories.to_numpy(dtype=object)
            if infer_dtype(categories, skipna=True) != "string":
                categories = _text(categories)
            table = np.append(self.codes(categories), -1)
            return table[series.array.codes]
        if dtype == object or pd.api.types.is_string_dtype(dtype):
            values = series.to_numpy(dtype=object)
            if infer_dtype(values, skipna=True) in ("string", "empty"):
                return self.codes(values)
            return self.codes(_text(values))  # mixed objects: their text, as at fit time
        # Numbers or booleans used as categories: convert each distinct value once.
        inverse, uniques = pd.factorize(series)
        return np.append(self.codes(_text(uniques)), -1)[inverse]


def with_columns(X: pd.DataFrame, columns: dict[str, object]) -> pd.DataFrame:
    """``X.assign(**columns)`` in one step.

    Candidate frames hold many single-column blocks (categoricals, nullable
    integers); adding columns one ``insert`` at a time to such a frame is slow
    and makes pandas warn about fragmentation, so new columns are concatenated
    at once. Replacing an existing column is a plain ``assign``.
    """
    if any(c in X.columns for c in columns):
        return X.assign(**columns)
    return pd.concat([X, pd.DataFrame(columns, index=X.index)], axis=1)


def _text(values: pd.Index | pd.Series | np.ndarray) -> np.ndarray:
    """``values`` as the strings ``astype("string")`` makes of them (missing as ``None``)."""
    return pd.Series(values).astype("string").to_numpy(dtype=object, na_value=None)


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

    def _levels(self) -> dict[str, Levels]:
        # Built on first use rather than in ``fit``: a bundle restored from JSON sets
        # ``categories_`` directly. Keyed on the object so a refit rebuilds it.
        cached = self.__dict__.get("_levels_cache")
        if cached is None or cached[0] is not self.categories_:
            cached = (self.categories_, {c: Levels.of(v) for c, v in self.categories_.items()})
            self.__dict__["_levels_cache"] = cached
        return cached[1]

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        defaults = self.defaults or {}
        names = self.feature_names_in_
        if not X.columns.is_unique:
            dup = sorted(map(str, X.columns[X.columns.duplicated()].unique()))
            raise BadInputError(f"candidate rows have duplicate column(s) {dup}; pass each feature once")
        where = X.columns.get_indexer(names)
        missing = [c for c, p in zip(names, where, strict=True) if p < 0 and c not in defaults]
        if missing:
            raise BadInputError(
                f"candidate rows lack feature column(s) {missing}; pass the feature snapshot columns the model was trained on"
            )
        levels = self._levels()
        dtypes = X.dtypes.to_numpy()
        out = np.empty((len(X), len(names)), dtype=np.float64)
        block_src: list[int] = []
        block_dst: list[int] = []
        for i, (c, p) in enumerate(zip(names, where, strict=True)):
            if p < 0:
                out[:, i] = defaults[c]
            elif c in levels:
                codes = levels[c].codes_of(X.iloc[:, p])
                out[:, i] = np.where(codes < 0, np.nan, codes)
            elif _is_numeric_dtype(dtypes[p]):
                block_src.append(p)
                block_dst.append(i)
            else:  # text or mixed objects in a numeric feature (e.g. a cold-start row of nulls)
                out[:, i] = pd.to_numeric(X.iloc[:, p], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if block_src:
            # One copy per pandas block instead of one conversion per column.
            out[:, block_dst] = X.iloc[:, block_src].to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_in_.copy()
