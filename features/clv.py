"""Customer lifetime value: a LightGBM regressor of next-period value (margin, or amounts without one).

Why not BG/NBD + Gamma-Gamma: ``lifetimes`` has had no release since 2020 (its
``lifetimes.datasets`` import already fails on current setuptools, its transaction
summary misbehaves under pandas 3), ``btyd`` 0.1b3 requires NumPy < 2 (with our
pins it resolves to 0.1a1, whose ``autograd`` 1.4 does not import on Python 3.11),
and ``pymc-marketing`` brings ~30 packages (PyTensor, Numba, ArviZ, ...) and MCMC
fits far slower than a 3-minute build of a million customers allows. The
regressor reuses the feature SQL, handles zero-spend customers natively (Tweedie
loss), can use engagement as well as RFM inputs, and ranks the next period's value
better than BG/NBD fitted on the same data (``benchmarks/clv.py``).

Fitting (time split, no leakage): features as of ``T0 = T - label_days`` and the
label *value in [T0, T)*, both strictly before the fit time ``T``. Prediction:
``clv_12m = max(0, prediction) * 365 / label_days``. With too little history the
model falls back to the run rate, the last 365 days' value (``method_ = "run_rate"``).

Value is measured on the basis of :mod:`nextbest.warehouse.value_basis`: margin,
amount x ``margin_rate``, or amount; ``basis`` records which, and the run rate
reads the matching feature (``margin_365d``, or ``monetary_365d`` scaled).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from nextbest.features.registry import VALUE_WINDOW_DAYS
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

RUN_RATE_FEATURE = f"margin_{VALUE_WINDOW_DAYS}d"
AMOUNT_RUN_RATE_FEATURE = f"monetary_{VALUE_WINDOW_DAYS}d"
#: A training row is a buyer when it has an order in the value window.
BUYERS_FEATURE = f"frequency_{VALUE_WINDOW_DAYS}d"


class ClvRegressor(RegressorMixin, BaseEstimator):
    """Predicts 12-month customer value from customer features.

    Parameters
    ----------
    basis
        What the label measures: ``"margin"``, ``"amount x margin_rate"`` or ``"amount"``
        (:class:`nextbest.warehouse.value_basis.ValueBasis`); picks the run-rate feature.
    margin_rate
        The rate of the ``"amount x margin_rate"`` basis (scales the amount run rate).
    label_days
        Length of the label window the model is fitted on; predictions are scaled to 365 days.
    min_customers
        Fewer training rows with any order than this: use the run rate instead of a model.
    n_estimators
        Most boosting rounds.
    early_stopping_rounds, validation_fraction
        The number of rounds is chosen on a random ``validation_fraction`` of the training
        customers (stop after ``early_stopping_rounds`` without a better Tweedie deviance), then
        the model is refitted on every row with that many rounds. ``None``: all ``n_estimators``.
        A shop with a few thousand customers overfits 200 rounds of 15-leaf trees (its ranking
        fell below the run rate's on UCI Online Retail); a large one uses more rounds.
    learning_rate, num_leaves, min_child_samples
        LightGBM parameters.
    random_state
        LightGBM seed and validation split (training is deterministic).

    Attributes
    ----------
    method_ : str
        ``"lightgbm"`` or ``"run_rate"``.
    feature_names_in_ : ndarray of str
    booster_ : lightgbm.Booster or None
    n_iter_ : int
        Boosting rounds of the final model (0 for the run rate).
    """

    def __init__(self, basis: str = "margin", margin_rate: float | None = None, label_days: int = 90,
                 min_customers: int = 200, n_estimators: int = 300, early_stopping_rounds: int | None = 30,
                 validation_fraction: float = 0.25, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 50, random_state: int = 0) -> None:
        self.basis = basis
        self.margin_rate = margin_rate
        self.label_days = label_days
        self.min_customers = min_customers
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray) -> ClvRegressor:
        """Fit on numeric features ``X`` and the value ``y`` of the following ``label_days``."""
        if self.basis not in ("margin", "amount x margin_rate", "amount"):
            raise ValueError(f"basis must be 'margin', 'amount x margin_rate' or 'amount', not {self.basis!r}")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        target = np.clip(np.asarray(y, dtype=float), 0.0, None)
        buyers = int((X[BUYERS_FEATURE].to_numpy(float, na_value=0.0) > 0).sum()) if BUYERS_FEATURE in X else 0
        if buyers < self.min_customers or not (target > 0).any():
            self.method_, self.booster_, self.n_iter_ = "run_rate", None, 0
            return self
        params = {
            "objective": "tweedie", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples, "seed": self.random_state, "deterministic": True,
            "force_row_wise": True, "num_threads": 1, "verbose": -1,
        }
        matrix, names = self._matrix(X), list(self.feature_names_in_)
        rounds = self.n_estimators
        if self.early_stopping_rounds is not None:
            val = np.random.default_rng(self.random_state).random(len(target)) < self.validation_fraction
            if (target[val] > 0).any() and (target[~val] > 0).any():
                probe = lgb.train(
                    params, lgb.Dataset(matrix[~val], label=target[~val], feature_name=names),
                    num_boost_round=self.n_estimators,
                    valid_sets=[lgb.Dataset(matrix[val], label=target[val], feature_name=names)],
                    callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
                )
                rounds = max(1, probe.best_iteration or self.n_estimators)
        data = lgb.Dataset(matrix, label=target, feature_name=names, free_raw_data=True)
        self.booster_ = lgb.train(params, data, num_boost_round=rounds)
        self.method_, self.n_iter_ = "lightgbm", rounds
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """12-month value per row (never negative)."""
        check_is_fitted(self, "method_")
        if self.booster_ is None:
            return np.clip(X[self.run_rate_feature].to_numpy(float, na_value=0.0), 0.0, None) * self._run_rate_scale
        per_window = self.booster_.predict(self._matrix(X), num_threads=1)
        return np.clip(per_window, 0.0, None) * (365.0 / self.label_days)

    @property
    def run_rate_feature(self) -> str:
        """The feature the run-rate fallback reads: the last 365 days' margin, or amount."""
        return RUN_RATE_FEATURE if self.basis == "margin" else AMOUNT_RUN_RATE_FEATURE

    @property
    def _run_rate_scale(self) -> float:
        return float(self.margin_rate) if self.basis == "amount x margin_rate" and self.margin_rate else 1.0

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        return X[list(self.feature_names_in_)].to_numpy(dtype=float, na_value=np.nan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: parameters, method, inputs and the LightGBM model as text."""
        check_is_fitted(self, "method_")
        return {
            "params": self.get_params(),
            "method": self.method_,
            "feature_names": list(self.feature_names_in_),
            "booster": self.booster_.model_to_string() if self.booster_ is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClvRegressor:
        """Inverse of :meth:`to_dict`."""
        est = cls(**data["params"])
        est.method_ = data["method"]
        est.feature_names_in_ = np.asarray(data["feature_names"], dtype=object)
        est.booster_ = lgb.Booster(model_str=data["booster"]) if data["booster"] else None
        est.n_iter_ = est.booster_.current_iteration() if est.booster_ is not None else 0
        return est

