"""The S-learner: one model with the treatment as a feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

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


#: Up to this many rows, both arms are predicted in one call on a stacked copy; above
#: it the copy costs more than the call it saves, so the matrix is flipped in place.
_STACK_ROWS = 4096


class SLearner(UpliftLearner):
    """One model with the treatment as a feature; uplift = prediction with it on minus off.

    Parameters
    ----------
    estimator
        Classifier fitted on the features plus the treatment column.
    treatment_column
        Boolean column of ``X`` telling whether the row was contacted.
    treatment_features
        Columns that describe *how* a contact is made (the channel): they can only
        matter when there is a contact, so they are set missing on rows that were not
        contacted, in training and for the control arm at prediction. A control row
        still records the channel it would have used; left in, the trees spend their
        splits on that channel's main effect and the contact effect per channel has
        to be rebuilt from contacted × channel interactions, which regularisation
        shrinks towards the average (on the synthetic world: push's uplift
        underestimated 2.5×, web's overestimated 2×).

    Attributes
    ----------
    estimator_ : fitted clone of ``estimator``.
    """

    def __init__(
        self, estimator: BaseEstimator, treatment_column: str = "contacted", treatment_features: tuple[str, ...] = ()
    ) -> None:
        self.estimator = estimator
        self.treatment_column = treatment_column
        self.treatment_features = treatment_features

    def _with_treatment(self, X: pd.DataFrame, t: np.ndarray) -> pd.DataFrame:
        """``X`` with the treatment column ``t`` and the treatment features missing where ``t`` is off."""
        masked = {c: X[c].where(t) for c in self.treatment_features if c in X.columns}
        return X.assign(**{self.treatment_column: t}, **masked)

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series, **fit_params: object) -> SLearner:
        t = treatment_flags(X, self.treatment_column)
        self.classes_ = np.array([0, 1])
        if fit_params.get("eval_set") is not None:
            X_val, y_val = fit_params["eval_set"]  # type: ignore[misc]
            X_val = self._with_treatment(X_val, treatment_flags(X_val, self.treatment_column))
            fit_params = {**fit_params, "eval_set": (X_val, y_val)}
        self.estimator_ = clone(self.estimator).fit(self._with_treatment(X, t), y, **fit_params)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict_proba(self._with_treatment(X, treatment_flags(X, self.treatment_column)))

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        treated = with_columns(X, {self.treatment_column: True})
        encoder = getattr(self.estimator_, "encoder_", None)
        if encoder is not None:
            # Encode once; the control arm is the same matrix with the treatment column off.
            matrix = encoder.transform(treated)
            column = int(np.flatnonzero(encoder.feature_names_in_ == self.treatment_column)[0])
            # Bundles saved before treatment_features existed lack the attribute.
            masked = np.flatnonzero(np.isin(encoder.feature_names_in_, getattr(self, "treatment_features", ())))
            n = len(matrix)
            if n <= _STACK_ROWS:
                # Small batches: one predict call on both arms halves the per-call overhead.
                both = np.concatenate([matrix, matrix])
                both[n:, column] = 0.0
                both[n:, masked] = np.nan
                p = self.estimator_.predict_matrix(both)
                return p[:n], p[n:]
            p1 = self.estimator_.predict_matrix(matrix)
            matrix[:, column] = 0.0
            matrix[:, masked] = np.nan
            return p1, self.estimator_.predict_matrix(matrix)
        p1 = self.estimator_.predict_proba(treated)[:, 1]
        p0 = self.estimator_.predict_proba(self._with_treatment(X, np.zeros(len(X), dtype=bool)))[:, 1]
        return p1, p0

    def predict_contrib(self, X: pd.DataFrame) -> pd.DataFrame:
        """Contributions to the *contacted* prediction, without the treatment column itself."""
        contrib = self.estimator_.predict_contrib(with_columns(X, {self.treatment_column: True}))
        keep = contrib.columns != self.treatment_column  # a positional take: cheaper than drop() on small frames
        return pd.DataFrame(contrib.to_numpy()[:, keep], columns=contrib.columns[keep], index=contrib.index)

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        return self.estimator_.feature_importance(importance_type)

    # ------------------------------------------------------------------ matrix path
    def matrix_encoders(self) -> list[FrameEncoder] | None:
        estimator = getattr(self, "estimator_", None)
        if not all_encoded(estimator) or self.treatment_column not in set(map(str, estimator.encoder_.feature_names_in_)):
            return None
        return [estimator.encoder_]

    def matrix_models(self) -> list[tuple[Any, bool]]:
        return [(self.estimator_, False)]

    def _matrix_columns(self) -> tuple[int, np.ndarray]:
        names = self.estimator_.encoder_.feature_names_in_
        column = int(np.flatnonzero(names == self.treatment_column)[0])
        # Bundles saved before treatment_features existed lack the attribute.
        return column, np.flatnonzero(np.isin(names, getattr(self, "treatment_features", ())))

    def predict_outcomes_matrix(
        self, rows: CandidateRows, predict: MatrixPredict = lightgbm_predict
    ) -> tuple[np.ndarray, np.ndarray]:
        matrix = rows(self.estimator_.encoder_)
        column, masked = self._matrix_columns()
        n = len(matrix)
        if n <= _STACK_ROWS:
            both = np.concatenate([matrix, matrix])
            both[:n, column] = 1.0
            both[n:, column] = 0.0
            both[n:, masked] = np.nan
            p = predict(self.estimator_, both, False)
            return p[:n], p[n:]
        arm = matrix.copy()
        arm[:, column] = 1.0
        p1 = predict(self.estimator_, arm, False)
        arm[:, column] = 0.0
        arm[:, masked] = np.nan
        return p1, predict(self.estimator_, arm, False)

    def predict_contrib_matrix(self, rows: CandidateRows) -> tuple[np.ndarray, np.ndarray]:
        treated = rows(self.estimator_.encoder_).copy()
        column, _ = self._matrix_columns()
        treated[:, column] = 1.0
        contrib = self.estimator_.predict_matrix(treated, pred_contrib=True)
        names = contrib_names(self.estimator_)
        keep = names != self.treatment_column
        return contrib[:, keep], names[keep]
