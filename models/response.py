"""The response model bundle: uplift learner + calibration + value model = a :class:`Scorer`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from nextbest.errors import BadInputError
from nextbest.models import persistence
from nextbest.models.calibration import ProbabilityCalibrator
from nextbest.models.scoring import SCORE_COLUMNS
from nextbest.models.uplift_base import UpliftLearner
from nextbest.models.value import ResponseValueModel
from nextbest.warehouse.schema import PERSONAL_COLUMNS

#: Columns of a candidate that identify it; never model inputs.
KEY_COLUMNS: tuple[str, ...] = ("customer_id", "decision_id", "ts", "as_of")

#: Candidate rows scored per block: large enough that per-call overhead vanishes,
#: small enough that the encoded matrices (rows x ~100 features x 8 bytes) stay in the tens of MB.
_BLOCK_ROWS = 65_536


def assert_no_personal_columns(columns: object) -> None:
    """Refuse any frame that would put personal data into a model artifact."""
    personal = sorted(set(map(str, columns)) & PERSONAL_COLUMNS)  # type: ignore[call-overload]
    if personal:
        raise BadInputError(
            f"model inputs include personal column(s) {personal}; train only on the feature registry's MODEL_FEATURES"
        )


class ResponseModel(BaseEstimator):
    """Everything decisioning needs to score a candidate, fitted together.

    ``fit`` trains the uplift ``learner`` on the training rows, the calibration
    map on the calibration (validation) rows, and the value model on the
    training rows that converted. The fitted bundle implements the
    :class:`~nextbest.models.scoring.Scorer` protocol.

    Parameters
    ----------
    learner
        An uplift learner (:class:`SLearner`, :class:`TLearner`, :class:`XLearner`)
        whose ``X`` holds the features, ``offer_id``, ``channel`` and the
        treatment column.
    calibration
        ``"isotonic"``, ``"sigmoid"`` or ``"none"``; see :class:`ProbabilityCalibrator`.
    value_model
        Regressor of revenue given a response; default :class:`ResponseValueModel`.
    context
        Transformer adding customer × offer features to the rows before the
        learner sees them (:class:`~nextbest.models.context.OfferContext`); ``None`` = none.

    Attributes
    ----------
    learner_, calibrator_, value_model_, context_
        The fitted parts (``context_`` is ``None`` without a ``context``).
    feature_names_ : tuple[str, ...]
        Candidate columns the model reads (without the treatment column).
    model_version : str
        Set by the registry loader (``"nextbest-response/3"``); ``"unregistered"`` otherwise.
    """

    model_version: str = "unregistered"

    def __init__(
        self,
        learner: UpliftLearner,
        calibration: str = "isotonic",
        value_model: BaseEstimator | None = None,
        context: BaseEstimator | None = None,
    ) -> None:
        self.learner = learner
        self.calibration = calibration
        self.value_model = value_model
        self.context = context

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        revenue: np.ndarray | pd.Series | None = None,
        X_calibration: pd.DataFrame | None = None,
        y_calibration: np.ndarray | pd.Series | None = None,
        **fit_params: object,
    ) -> ResponseModel:
        """Fit the learner, the calibration map and the value model.

        Parameters
        ----------
        X, y
            Training rows (features + ``offer_id``, ``channel``, treatment) and labels.
        revenue
            Revenue per training row (0 when no conversion); the value model is
            fitted on rows with ``y == 1``. ``None`` skips it (value = offer means of nothing: 0).
        X_calibration, y_calibration
            Held-out rows for the calibration map; without them no calibration.
        fit_params
            Passed to the learner's ``fit``; an ``eval_set=(X_val, y_val)`` drives
            LightGBM's early stopping (each learner routes it to its models).
        """
        assert_no_personal_columns(X.columns)
        y = np.asarray(y).astype(np.int8)
        treatment = self.learner.treatment_column
        self.feature_names_ = tuple(c for c in X.columns if c != treatment)
        self.context_ = clone(self.context).fit(X) if self.context is not None else None
        X = self._derive(X)
        if fit_params.get("eval_set") is not None:
            X_val, y_val = fit_params["eval_set"]  # type: ignore[misc]
            fit_params = {**fit_params, "eval_set": (self._derive(X_val), y_val)}
        if X_calibration is not None:
            X_calibration = self._derive(X_calibration)
        self.learner_ = clone(self.learner).fit(X, y, **fit_params)
        self.calibrator_ = ProbabilityCalibrator(self.calibration if X_calibration is not None else "none")
        if X_calibration is not None and y_calibration is not None:
            raw = self.learner_.predict_proba(X_calibration)[:, 1]
            self.calibrator_.fit(raw, np.asarray(y_calibration))
        else:
            self.calibrator_.fit(np.zeros(1), np.zeros(1))
        value = clone(self.value_model) if self.value_model is not None else ResponseValueModel()
        converted = y == 1
        features = X.drop(columns=[treatment])
        rev = np.zeros(len(X)) if revenue is None else np.asarray(revenue, dtype=np.float64)
        self.value_model_ = value.fit(features.loc[converted], rev[converted])
        return self

    # ------------------------------------------------------------------ Scorer
    def _derive(self, X: pd.DataFrame) -> pd.DataFrame:
        # Bundles saved before the context step existed have no ``context_``.
        context = getattr(self, "context_", None)
        return context.transform(X) if context is not None else X

    def _inputs(self, candidates: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in ("offer_id", "channel") if c not in candidates.columns]
        if missing:
            raise BadInputError(f"candidate rows lack {missing}; every candidate needs an offer_id and a channel")
        return self._derive(candidates)

    def predict_raw_outcomes(self, candidates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated ``(p_contact, p_control)``."""
        return self.learner_.predict_outcomes(self._inputs(candidates))

    def predict_observed(self, X: pd.DataFrame, calibrated: bool = True) -> np.ndarray:
        """P(response) of each row under the treatment it received (``X`` has the treatment column)."""
        raw = self.learner_.predict_proba(self._inputs(X))[:, 1]
        return self.calibrator_.transform(raw) if calibrated else raw

    def score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """``p_contact``, ``p_control``, ``uplift`` and ``value`` per candidate (see :class:`Scorer`)."""
        n = len(candidates)
        p1, p0, value = np.empty(n), np.empty(n), np.empty(n)
        # Blocks bound the encoded matrices (rows x features doubles) a large batch would need at once.
        for start in range(0, max(n, 1), _BLOCK_ROWS):
            rows = slice(start, min(start + _BLOCK_ROWS, n))
            X = self._inputs(candidates if n <= _BLOCK_ROWS else candidates.iloc[rows])
            raw1, raw0 = self.learner_.predict_outcomes(X)
            p1[rows] = self.calibrator_.transform(raw1)
            p0[rows] = self.calibrator_.transform(raw0)
            value[rows] = self.value_model_.predict(X)
        columns = {"p_contact": p1, "p_control": p0, "uplift": p1 - p0, "value": value}
        return pd.DataFrame({c: columns[c] for c in SCORE_COLUMNS}, index=candidates.index)

    def reasons(self, candidates: pd.DataFrame, top: int = 3) -> list[list[str]]:
        """Top ``top`` feature contributions (log-odds) to ``p_contact`` per row, e.g. ``"engagement_score:+0.41"``."""
        if len(candidates) == 0:
            return []
        contrib = self.learner_.predict_contrib(self._inputs(candidates))
        features = np.flatnonzero(contrib.columns != "bias")
        values = contrib.to_numpy()[:, features]
        names = np.asarray(contrib.columns, dtype=object)[features]
        k = min(top, values.shape[1])
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(values, order, axis=1)
        return [
            [f"{names[j]}:{v:+.2f}" for j, v in zip(row_idx, row_val, strict=True) if v != 0.0]
            for row_idx, row_val in zip(order, picked, strict=True)
        ]

    def feature_importance(self) -> pd.Series:
        """Gain per feature of the contacted-response model."""
        return self.learner_.feature_importance("gain")

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path | str) -> Path:
        """Write the fitted bundle as JSON + native LightGBM files (no pickle)."""
        return persistence.save(self, folder)

    @classmethod
    def load(cls, folder: Path | str, model_version: str = "unregistered") -> ResponseModel:
        model = persistence.load(folder)
        if not isinstance(model, cls):
            raise BadInputError(f"{folder} holds a {type(model).__name__}, not a ResponseModel")
        model.model_version = model_version
        return model
