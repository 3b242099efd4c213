"""The shift learner: contact shifts the log-odds, a boosted baseline plus a boosted effect.
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


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class ShiftLearner(UpliftLearner):
    """Contact shifts the log-odds: ``logit p = b(x) + contacted * tau(x)``, two boosted models.

    The S-learner must find the contact effect as splits on one binary column that
    compete with every other feature, so regularisation shrinks it towards the
    average; the T-learner fits the control outcome on the control rows alone (a
    fifth of the data) and its noise becomes uplift noise. Here the *baseline*
    ``b(x)`` is fitted on all rows, with the current contact effect as a fixed
    log-odds offset, and the *effect* ``tau(x)`` on the contacted rows, as a
    correction on top of the baseline (again an offset). The two fits alternate
    (backfitting) for ``n_rounds`` passes. The effect model has its own
    estimator, so it can be kept simpler than the baseline: the effect of a
    contact is a smoother function than the response itself.

    Parameters
    ----------
    estimator
        Classifier of the baseline; must accept ``init_score`` in ``fit`` and have
        ``decision_function`` (:class:`~nextbest.models.lgbm.LGBMResponseClassifier`).
    effect_estimator
        Classifier of the contact effect; ``None`` = a clone of ``estimator``.
    treatment_column
        Boolean column of ``X`` telling whether the row was contacted.
    treatment_features
        Columns that describe how a contact is made (the channel): only the effect
        model reads them; the baseline sees them as missing.
    n_rounds
        Backfitting passes (baseline then effect); 2 is enough in practice.

    Attributes
    ----------
    baseline_, effect_ : fitted classifiers (log-odds without the intercepts).
    intercept_ : float
        Log-odds of the control arm's response rate (the baseline's offset).
    effect0_ : float
        Average contact effect in log-odds (the effect model's offset).
    """

    def __init__(
        self,
        estimator: BaseEstimator,
        effect_estimator: BaseEstimator | None = None,
        treatment_column: str = "contacted",
        treatment_features: tuple[str, ...] = (),
        n_rounds: int = 2,
    ) -> None:
        self.estimator = estimator
        self.effect_estimator = effect_estimator
        self.treatment_column = treatment_column
        self.treatment_features = treatment_features
        self.n_rounds = n_rounds

    def _masked(self, features: pd.DataFrame) -> pd.DataFrame:
        cols = [c for c in self.treatment_features if c in features.columns]
        return with_columns(features, {c: pd.Series(np.nan, index=features.index, dtype=float) for c in cols}) if cols else features

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series, **fit_params: object) -> ShiftLearner:
        if self.n_rounds < 1:
            raise BadInputError(f"n_rounds must be at least 1, got {self.n_rounds}")
        t = treatment_flags(X, self.treatment_column)
        y = np.asarray(y).astype(np.int8)
        if t.all() or not t.any():
            raise BadInputError("the shift learner needs both contacted and control decisions; none of one arm was found")
        self.classes_ = np.array([0, 1])
        features = X.drop(columns=[self.treatment_column])
        base_features = self._masked(features)
        # Half a response per arm keeps the logits finite when an arm has none.
        rate1 = (y[t].sum() + 0.5) / (t.sum() + 1.0)
        rate0 = (y[~t].sum() + 0.5) / ((~t).sum() + 1.0)
        self.intercept_ = _logit(rate0)
        self.effect0_ = _logit(rate1) - self.intercept_

        eval_set = fit_params.get("eval_set")
        callbacks = fit_params.get("callbacks")
        if eval_set is not None:
            X_val, y_val = eval_set  # type: ignore[misc]
            t_val = treatment_flags(X_val, self.treatment_column)
            y_val = np.asarray(y_val).astype(np.int8)
            val_features = X_val.drop(columns=[self.treatment_column])
            val_base = self._masked(val_features)
        effect_model = self.effect_estimator if self.effect_estimator is not None else self.estimator
        tau = np.full(len(X), self.effect0_)
        tau_val = np.full(len(X_val), self.effect0_) if eval_set is not None else None
        weight = t.astype(np.float64)
        for round_ in range(self.n_rounds):
            base_kw: dict[str, object] = {"init_score": self.intercept_ + t * tau}
            if eval_set is not None:
                base_kw |= {"eval_set": (val_base, y_val), "eval_init_score": self.intercept_ + t_val * tau_val}
            if round_ == 0 and callbacks is not None:
                base_kw["callbacks"] = callbacks  # e.g. Optuna's pruning: one report per boosting round
            self.baseline_ = clone(self.estimator).fit(base_features, y, **base_kw)
            b = self.intercept_ + self.baseline_.decision_function(base_features)
            # All rows, control ones weighted 0: the effect model's encoder then has
            # the baseline's categories, so one encoded matrix serves both at scoring.
            effect_kw: dict[str, object] = {"sample_weight": weight, "init_score": b + self.effect0_}
            if eval_set is not None:
                b_val = self.intercept_ + self.baseline_.decision_function(val_base)
                effect_kw |= {
                    "eval_set": (val_features.loc[t_val], y_val[t_val]),
                    "eval_init_score": b_val[t_val] + self.effect0_,
                }
            self.effect_ = clone(effect_model).fit(features, y, **effect_kw)
            tau = self.effect0_ + self.effect_.decision_function(features)
            if eval_set is not None:
                tau_val = self.effect0_ + self.effect_.decision_function(val_features)
        return self

    def predict_logits(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(b, tau)``: baseline log-odds and the contact effect in log-odds, per row."""
        features = X.drop(columns=[self.treatment_column], errors="ignore")
        encoder = getattr(self.effect_, "encoder_", None)
        base_encoder = getattr(self.baseline_, "encoder_", None)
        if encoder is not None and base_encoder is not None and list(encoder.feature_names_in_) == list(base_encoder.feature_names_in_):
            # Encode once: the baseline's matrix is the effect's with the channel missing.
            matrix = encoder.transform(features)
            tau = self.effect0_ + self.effect_.predict_matrix(matrix, raw_score=True)
            masked = np.flatnonzero(np.isin(encoder.feature_names_in_, self.treatment_features))
            matrix[:, masked] = np.nan
            b = self.intercept_ + self.baseline_.predict_matrix(matrix, raw_score=True)
            return b, tau
        b = self.intercept_ + self.baseline_.decision_function(self._masked(features))
        return b, self.effect0_ + self.effect_.decision_function(features)

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        b, tau = self.predict_logits(X)
        return _sigmoid(b + tau), _sigmoid(b)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        t = treatment_flags(X, self.treatment_column)
        b, tau = self.predict_logits(X)
        p = _sigmoid(b + t * tau)
        return np.column_stack([1.0 - p, p])

    def predict_contrib(self, X: pd.DataFrame) -> pd.DataFrame:
        """Contributions to the *contacted* log-odds: baseline's plus effect's, per feature."""
        features = X.drop(columns=[self.treatment_column], errors="ignore")
        base = self.baseline_.predict_contrib(self._masked(features))
        effect = self.effect_.predict_contrib(features)
        return base.add(effect, fill_value=0.0)[effect.columns]

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        base = self.baseline_.feature_importance(importance_type)
        effect = self.effect_.feature_importance(importance_type)
        return base.add(effect, fill_value=0.0).sort_values(ascending=False)

    # ------------------------------------------------------------------ matrix path
    def _shared_encoding(self) -> bool:
        """Whether the baseline reads the effect's encoding with the treatment features missing (as ``predict_logits``)."""
        return list(self.effect_.encoder_.feature_names_in_) == list(self.baseline_.encoder_.feature_names_in_)

    def matrix_encoders(self) -> list[FrameEncoder] | None:
        base, effect = getattr(self, "baseline_", None), getattr(self, "effect_", None)
        if not all_encoded(base, effect):
            return None
        return [effect.encoder_] if self._shared_encoding() else [base.encoder_, effect.encoder_]

    def matrix_models(self) -> list[tuple[Any, bool]]:
        return [(self.baseline_, True), (self.effect_, True)]

    def _baseline_rows(self, rows: CandidateRows) -> np.ndarray:
        """The baseline's rows: its encoding of the candidates with the treatment features missing."""
        encoder = self.effect_.encoder_ if self._shared_encoding() else self.baseline_.encoder_
        matrix = rows(encoder).copy()
        matrix[:, np.flatnonzero(np.isin(encoder.feature_names_in_, self.treatment_features))] = np.nan
        return matrix

    def predict_outcomes_matrix(
        self, rows: CandidateRows, predict: MatrixPredict = lightgbm_predict
    ) -> tuple[np.ndarray, np.ndarray]:
        tau = self.effect0_ + predict(self.effect_, rows(self.effect_.encoder_), True)
        b = self.intercept_ + predict(self.baseline_, self._baseline_rows(rows), True)
        return _sigmoid(b + tau), _sigmoid(b)

    def predict_contrib_matrix(self, rows: CandidateRows) -> tuple[np.ndarray, np.ndarray]:
        base = self.baseline_.predict_matrix(self._baseline_rows(rows), pred_contrib=True)
        effect = self.effect_.predict_matrix(rows(self.effect_.encoder_), pred_contrib=True)
        names = contrib_names(self.effect_)
        base_names = contrib_names(self.baseline_)
        if list(base_names) != list(names):
            # As predict_contrib's aligned add: a column only the effect reads gets 0 from the baseline.
            where = {c: i for i, c in enumerate(base_names)}
            base = np.column_stack([base[:, where[c]] if c in where else np.zeros(len(base)) for c in names])
        return base + effect, names
