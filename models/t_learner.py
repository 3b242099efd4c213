"""The T-learner: one model per arm, contacted and control.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from nextbest.errors import BadInputError
from nextbest.models.encoding import FrameEncoder, with_columns
from nextbest.models.uplift_base import (
    CandidateRows,
    MatrixPredict,
    UpliftLearner,
    all_encoded,
    contrib_names,
    lightgbm_predict,
    treatment_flags,
)


def _split_eval(fit_params: dict[str, object], column: str, treated: bool) -> dict[str, object]:
    """``fit_params`` with the ``eval_set`` reduced to one arm, without the treatment column."""
    eval_set = fit_params.get("eval_set")
    if eval_set is None:
        return fit_params
    X_val, y_val = eval_set  # type: ignore[misc]
    mask = treatment_flags(X_val, column) == treated
    return {**fit_params, "eval_set": (X_val.loc[mask].drop(columns=[column]), np.asarray(y_val)[mask])}


class TLearner(UpliftLearner):
    """Two models, one on contacted rows and one on control rows.

    A monotone uplift: with ``estimator`` constrained in the contact-pressure
    columns (say, never rising with recent contacts) and those columns in
    ``control_ignores``, ``p_control`` does not depend on pressure at all, so
    ``uplift = p_treated - p_control`` moves with pressure exactly as the
    constrained ``p_treated`` does. (Constraining both arms would not do: the
    difference of two non-increasing functions can rise.)

    Parameters
    ----------
    estimator
        Classifier of the contacted arm; it never sees the treatment column.
    treatment_column
        Boolean column of ``X`` telling whether the row was contacted.
    control_estimator
        Classifier of the control arm; ``None`` = a clone of ``estimator``.
    control_ignores
        Columns the control arm never reads (contact pressure: it acts through a contact only).
        They are missing in every row it is fitted on, so none of its trees splits on them and
        its prediction is the same whatever value they have.

    Attributes
    ----------
    treated_ : classifier fitted on contacted rows.
    control_ : classifier fitted on control rows.
    """

    def __init__(
        self,
        estimator: BaseEstimator,
        treatment_column: str = "contacted",
        control_estimator: BaseEstimator | None = None,
        control_ignores: tuple[str, ...] = (),
    ) -> None:
        self.estimator = estimator
        self.treatment_column = treatment_column
        self.control_estimator = control_estimator
        self.control_ignores = control_ignores

    def _control_view(self, features: pd.DataFrame) -> pd.DataFrame:
        """``features`` with the ``control_ignores`` columns missing."""
        # Bundles saved before control_ignores existed lack the attribute.
        cols = [c for c in getattr(self, "control_ignores", ()) if c in features.columns]
        return with_columns(features, {c: pd.Series(np.nan, index=features.index, dtype=float) for c in cols}) if cols else features

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series, **fit_params: object) -> TLearner:
        t = treatment_flags(X, self.treatment_column)
        y = np.asarray(y)
        if t.all() or not t.any():
            raise BadInputError("the T-learner needs both contacted and control decisions; none of one arm was found")
        features = X.drop(columns=[self.treatment_column])
        self.classes_ = np.array([0, 1])
        col = self.treatment_column
        self.treated_ = clone(self.estimator).fit(features.loc[t], y[t], **_split_eval(fit_params, col, True))
        control = self.control_estimator if self.control_estimator is not None else self.estimator
        control_params = _split_eval(fit_params, col, False)
        if control_params.get("eval_set") is not None:
            X_val, y_val = control_params["eval_set"]  # type: ignore[misc]
            control_params = {**control_params, "eval_set": (self._control_view(X_val), y_val)}
        self.control_ = clone(control).fit(self._control_view(features.loc[~t]), y[~t], **control_params)
        return self

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        features = X.drop(columns=[self.treatment_column], errors="ignore")
        return self.treated_.predict_proba(features)[:, 1], self.control_.predict_proba(features)[:, 1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        t = treatment_flags(X, self.treatment_column)
        p1, p0 = self.predict_outcomes(X)
        p = np.where(t, p1, p0)
        return np.column_stack([1.0 - p, p])

    def predict_contrib(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.treated_.predict_contrib(X.drop(columns=[self.treatment_column], errors="ignore"))

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        return self.treated_.feature_importance(importance_type)

    # ------------------------------------------------------------------ matrix path
    def matrix_encoders(self) -> list[FrameEncoder] | None:
        models = [getattr(self, a, None) for a in ("treated_", "control_")]
        return [m.encoder_ for m in models] if all_encoded(*models) else None

    def matrix_models(self) -> list[tuple[Any, bool]]:
        return [(self.treated_, False), (self.control_, False)]

    def predict_outcomes_matrix(
        self, rows: CandidateRows, predict: MatrixPredict = lightgbm_predict
    ) -> tuple[np.ndarray, np.ndarray]:
        p1 = predict(self.treated_, rows(self.treated_.encoder_), False)
        return p1, predict(self.control_, rows(self.control_.encoder_), False)

    def predict_contrib_matrix(self, rows: CandidateRows) -> tuple[np.ndarray, np.ndarray]:
        contrib = self.treated_.predict_matrix(rows(self.treated_.encoder_), pred_contrib=True)
        return contrib, contrib_names(self.treated_)
