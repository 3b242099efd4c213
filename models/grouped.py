"""One model per (offer, channel): the ``per_offer_channel`` training strategy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

#: Separator of the group key; offer and channel ids are ``[a-z0-9_]`` so it cannot clash.
KEY_SEP = "|"


def group_keys(X: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The group key of every row, e.g. ``"fashion_sale|email"``."""
    keys = X[columns[0]].astype("string")
    for c in columns[1:]:
        keys = keys + KEY_SEP + X[c].astype("string")
    return keys.fillna("").to_numpy(dtype=object)


class PerGroupClassifier(ClassifierMixin, BaseEstimator):
    """Fit a clone of ``estimator`` per group of rows, with a pooled fallback.

    Parameters
    ----------
    estimator
        Any classifier with ``predict_proba``; cloned per group.
    group_columns
        Columns whose values define a group (default offer and channel).
    min_group_rows, min_group_positives
        Groups smaller than this (or with fewer positives) are scored by the
        pooled fallback model, which is fitted on all rows: a per-group model
        on a handful of conversions would only add variance.

    Attributes
    ----------
    estimators_ : dict[str, estimator]
        Fitted model per group key.
    fallback_ : estimator
        Pooled model for rare and unseen groups.
    """

    def __init__(
        self,
        estimator: BaseEstimator,
        group_columns: Sequence[str] = ("offer_id", "channel"),
        min_group_rows: int = 300,
        min_group_positives: int = 15,
    ) -> None:
        self.estimator = estimator
        self.group_columns = group_columns
        self.min_group_rows = min_group_rows
        self.min_group_positives = min_group_positives

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series, **fit_params: object) -> PerGroupClassifier:
        y = np.asarray(y).astype(np.int8)
        keys = group_keys(X, list(self.group_columns))
        self.classes_ = np.array([0, 1])
        self.fallback_ = clone(self.estimator).fit(X, y, **fit_params)
        eval_set = fit_params.get("eval_set")
        eval_keys = group_keys(eval_set[0], list(self.group_columns)) if eval_set is not None else None
        self.estimators_: dict[str, BaseEstimator] = {}
        frame = pd.DataFrame({"key": keys, "y": y})
        stats = frame.groupby("key", sort=True)["y"].agg(["size", "sum"])
        eligible = stats[(stats["size"] >= self.min_group_rows) & (stats["sum"] >= self.min_group_positives)]
        for key in eligible.index:
            mask = keys == key
            if y[mask].min() == y[mask].max():  # a single class: nothing to learn
                continue
            params = dict(fit_params)
            if eval_set is not None:
                # Early-stop each group's model on that group's validation rows (or not at all).
                vmask = eval_keys == key
                params["eval_set"] = (eval_set[0].loc[vmask], np.asarray(eval_set[1])[vmask]) if vmask.any() else None
            self.estimators_[str(key)] = clone(self.estimator).fit(X.loc[mask], y[mask], **params)
        self.n_features_in_ = getattr(self.fallback_, "n_features_in_", X.shape[1])
        return self

    def _route(self, X: pd.DataFrame) -> tuple[np.ndarray, list[tuple[BaseEstimator, np.ndarray]]]:
        keys = group_keys(X, list(self.group_columns))
        routed = np.zeros(len(X), dtype=bool)
        plan: list[tuple[BaseEstimator, np.ndarray]] = []
        for key in np.unique(keys):
            est = self.estimators_.get(str(key))
            if est is not None:
                mask = keys == key
                routed |= mask
                plan.append((est, mask))
        plan.append((self.fallback_, ~routed))
        return keys, plan

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(X), 2), dtype=np.float64)
        _, plan = self._route(X)
        for est, mask in plan:
            if mask.any():
                out[mask] = est.predict_proba(X.loc[mask])
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int8)

    def predict_contrib(self, X: pd.DataFrame) -> pd.DataFrame:
        """Feature contributions, each row from the model that scores it."""
        _, plan = self._route(X)
        columns = [*self.fallback_.feature_names_in_, "bias"]
        out = np.zeros((len(X), len(columns)), dtype=np.float64)
        for est, mask in plan:
            if mask.any():
                out[mask] = est.predict_contrib(X.loc[mask]).to_numpy()
        return pd.DataFrame(out, columns=columns, index=X.index)

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        """Importance summed over the group models and the fallback."""
        parts = [e.feature_importance(importance_type) for e in [*self.estimators_.values(), self.fallback_]]
        return pd.concat(parts, axis=1).fillna(0).sum(axis=1).sort_values(ascending=False).rename(importance_type)
