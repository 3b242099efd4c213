"""Künzel et al.'s X-learner: the T-learner's outcomes, then regressions of the imputed effects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone

from nextbest.models.encoding import FrameEncoder
from nextbest.models.t_learner import TLearner
from nextbest.models.uplift_base import CandidateRows, MatrixPredict, all_encoded, lightgbm_predict, treatment_flags


class XLearner(TLearner):
    """Künzel et al.'s X-learner: T-learner outcomes, then regressions of imputed effects.

    Stage 1 fits the T-learner's two outcome models. Stage 2 regresses the
    imputed individual effects ``y - p_control(x)`` (contacted rows) and
    ``p_treated(x) - y`` (control rows) on the features and blends the two
    effect models with the contact share ``g``: ``tau = g * tau_control + (1 - g) * tau_treated``.
    The potential outcomes reported are ``p_control`` and ``p_control + tau``.

    A monotone uplift: the uplift is ``clip(p_control + tau) - p_control``. With
    the contact-pressure columns in ``control_ignores``, ``p_control`` does not
    depend on them; with ``effect_estimator`` constrained in them, both effect
    models are, and so is ``tau``, their blend with positive weights; the clip is
    non-decreasing. The uplift then moves with pressure as ``tau`` does.

    Parameters
    ----------
    estimator
        Outcome classifier of the contacted arm (stage 1).
    effect_estimator
        Regressor of the imputed effects (stage 2).
    treatment_column
        Boolean column of ``X`` telling whether the row was contacted.
    control_estimator, control_ignores
        As for :class:`TLearner` (stage 1's control arm).
    """

    def __init__(
        self,
        estimator: BaseEstimator,
        effect_estimator: RegressorMixin | None = None,
        treatment_column: str = "contacted",
        control_estimator: BaseEstimator | None = None,
        control_ignores: tuple[str, ...] = (),
    ) -> None:
        super().__init__(estimator, treatment_column, control_estimator, control_ignores)
        self.effect_estimator = effect_estimator

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series, **fit_params: object) -> XLearner:
        super().fit(X, y, **fit_params)
        t = treatment_flags(X, self.treatment_column)
        y = np.asarray(y, dtype=np.float64)
        features = X.drop(columns=[self.treatment_column])
        p1, p0 = super().predict_outcomes(features)
        if self.effect_estimator is None:
            from nextbest.models.lgbm import LGBMValueRegressor

            # The outcome model's categories and defaults: the effect models then read the candidate
            # rows it reads (offer history may be absent) and encode them as it does.
            effect = LGBMValueRegressor(
                n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=100,
                categorical=getattr(self.estimator, "categorical", ()), defaults=getattr(self.estimator, "defaults", None),
            )
        else:
            effect = self.effect_estimator
        self.tau_treated_ = clone(effect).fit(features.loc[t], y[t] - p0[t])
        self.tau_control_ = clone(effect).fit(features.loc[~t], p1[~t] - y[~t])
        self.contact_share_ = float(t.mean())
        return self

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        features = X.drop(columns=[self.treatment_column], errors="ignore")
        p0 = self.control_.predict_proba(features)[:, 1]
        g = self.contact_share_
        tau = g * self.tau_control_.predict(features) + (1.0 - g) * self.tau_treated_.predict(features)
        return np.clip(p0 + tau, 0.0, 1.0), p0

    # ------------------------------------------------------------------ matrix path
    def matrix_encoders(self) -> list[FrameEncoder] | None:
        # treated_ only gives the reason codes (predict_contrib is the T-learner's).
        models = [getattr(self, a, None) for a in ("treated_", "control_", "tau_control_", "tau_treated_")]
        return [m.encoder_ for m in models] if all_encoded(*models) else None

    def matrix_models(self) -> list[tuple[Any, bool]]:
        return [(self.control_, False), (self.tau_control_, False), (self.tau_treated_, False)]

    def predict_outcomes_matrix(
        self, rows: CandidateRows, predict: MatrixPredict = lightgbm_predict
    ) -> tuple[np.ndarray, np.ndarray]:
        p0 = predict(self.control_, rows(self.control_.encoder_), False)
        g = self.contact_share_
        tau_control = predict(self.tau_control_, rows(self.tau_control_.encoder_), False)
        tau = g * tau_control + (1.0 - g) * predict(self.tau_treated_, rows(self.tau_treated_.encoder_), False)
        return np.clip(p0 + tau, 0.0, 1.0), p0
