"""Probability calibration fitted on held-out (validation) predictions.

Arbitration multiplies probabilities by money, so they must mean what they say:
a 3 % score should convert 3 % of the time. Boosted trees trained with early
stopping are usually close but not exact; a monotone map fitted on validation
data fixes the rest without changing the ranking much.

The fitted map is stored as plain numbers (isotonic knots or Platt
coefficients) so the scorer applies it with ``numpy.interp`` at load time, with
no scikit-learn object to unpickle.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from nextbest.errors import BadInputError

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class ProbabilityCalibrator(TransformerMixin, BaseEstimator):
    """Map raw probabilities to calibrated ones.

    Parameters
    ----------
    method
        ``"isotonic"`` (non-parametric, monotone step function; needs a few
        thousand validation rows), ``"sigmoid"`` (Platt scaling on the log-odds;
        robust with little data) or ``"none"`` (identity).

    Attributes
    ----------
    x_thresholds_, y_thresholds_ : ndarray
        Knots of the piecewise-linear isotonic map (``method="isotonic"``): the
        centroids of the isotonic blocks, anchored at (0, 0) and (1, 1).
    coef_, intercept_ : float
        Platt coefficients on the log-odds (``method="sigmoid"``).
    """

    def __init__(self, method: Literal["isotonic", "sigmoid", "none"] = "isotonic") -> None:
        self.method = method

    def fit(self, p: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        p = np.asarray(p, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(p) != len(y):
            raise BadInputError(f"calibration got {len(p)} probabilities but {len(y)} labels")
        if self.method == "isotonic":
            fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(p, y)
            # Interpolate between the centroids of the isotonic blocks instead of using
            # the step function: the map stays monotone but becomes strictly increasing,
            # so two candidates (or a customer's contacted and control scores) that
            # the model ranks apart are not tied by calibration; uplift depends on it.
            levels, block = np.unique(fitted, return_inverse=True)
            centroids = np.bincount(block, weights=p) / np.bincount(block)
            inner = (levels > 0.0) & (levels < 1.0)  # a 0 or 1 block would flatten the map again
            self.x_thresholds_ = np.concatenate([[0.0], centroids[inner], [1.0]])
            self.y_thresholds_ = np.concatenate([[0.0], levels[inner], [1.0]])
        elif self.method == "sigmoid":
            lr = LogisticRegression(C=1e6).fit(_logit(p).reshape(-1, 1), y.astype(int))
            self.coef_ = float(lr.coef_[0, 0])
            self.intercept_ = float(lr.intercept_[0])
        elif self.method != "none":
            raise BadInputError(f"training.calibration: unknown method {self.method!r}; use isotonic, sigmoid or none")
        self.n_features_in_ = 1
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(p, self.x_thresholds_, self.y_thresholds_)
        if self.method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.coef_ * _logit(p) + self.intercept_)))
        return p
