"""Uplift meta-learners: the incremental effect of contacting a customer.

The training rows come from randomised campaigns: a *treated* row was contacted
with an offer on a channel, a *control* row recorded the same kind of choice but
was not contacted. Each learner estimates both potential outcomes,

``p_treated(x) = P(response | x, contacted)`` and ``p_control(x) = P(response | x, not contacted)``,

and the uplift ``p_treated - p_control``. All learners read the treatment from a
column of ``X`` (default ``contacted``), so they fit into pipelines and
cross-validation like any classifier; ``predict_proba`` scores each row under the
treatment it actually received.

Every learner also predicts from encoded matrices (the scoring service's path,
:class:`~nextbest.models.candidate_matrix.CandidateMatrix`): ``matrix_encoders``
names the encoders whose candidate rows it reads, ``predict_outcomes_matrix`` and
``predict_contrib_matrix`` give what ``predict_outcomes`` and ``predict_contrib``
give on the same rows, with the same trees and the same arithmetic, and
``matrix_models`` lists the tree models it runs (for compiling them). A learner
whose parts are not encoded LightGBM models (e.g. a per-group classifier) has no
matrix path: ``matrix_encoders`` is ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone

from nextbest.errors import BadInputError
from nextbest.models.encoding import FrameEncoder, with_columns

#: Up to this many rows, both arms are predicted in one call on a stacked copy; above
#: it the copy costs more than the call it saves, so the matrix is flipped in place.
_STACK_ROWS = 4096


def _treatment(X: pd.DataFrame, column: str) -> np.ndarray:
    if column not in X.columns:
        raise BadInputError(f"uplift training frame lacks the treatment column {column!r} (decisions.contacted)")
    t = X[column].astype("boolean")
    if t.isna().any():
        raise BadInputError(f"treatment column {column!r} has nulls; drop decisions whose contacted flag is unknown")
    return t.to_numpy(dtype=bool)


def _split_eval(fit_params: dict[str, object], column: str, treated: bool) -> dict[str, object]:
    """``fit_params`` with the ``eval_set`` reduced to one arm, without the treatment column."""
    eval_set = fit_params.get("eval_set")
    if eval_set is None:
        return fit_params
    X_val, y_val = eval_set  # type: ignore[misc]
    mask = _treatment(X_val, column) == treated
    return {**fit_params, "eval_set": (X_val.loc[mask].drop(columns=[column]), np.asarray(y_val)[mask])}


#: Candidate rows as an encoder encodes them: ``rows(encoder)`` is a (n, F) matrix in
#: ``encoder.feature_names_in_`` order, the treatment column (if any) a placeholder.
#: The same matrix may serve several models: never write into it.
CandidateRows = Callable[[FrameEncoder], np.ndarray]
#: Runs a tree model on an encoded matrix: ``predict(model, matrix, raw_score)``.
MatrixPredict = Callable[[Any, np.ndarray, bool], np.ndarray]


def lightgbm_predict(model: Any, matrix: np.ndarray, raw_score: bool = False) -> np.ndarray:
    """``model.predict_matrix(matrix)`` (raw scores when ``raw_score``): what the DataFrame path runs."""
    return model.predict_matrix(matrix, raw_score=True) if raw_score else model.predict_matrix(matrix)


def _encoded(*models: object) -> bool:
    """Whether every model predicts from an encoded matrix (an encoded LightGBM estimator)."""
    return all(
        hasattr(m, "predict_matrix") and hasattr(getattr(m, "encoder_", None), "_levels") for m in models
    )


def _contrib_names(model: Any) -> np.ndarray:
    return np.asarray([*map(str, model.encoder_.feature_names_in_), "bias"], dtype=object)


def _owner(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def matrix_encoders_of(learner: object) -> list[FrameEncoder] | None:
    """``learner.matrix_encoders()``, or ``None`` when it has no matrix path it can vouch for.

    A subclass that overrides ``predict_outcomes`` or ``predict_contrib`` without
    also overriding its matrix counterpart would score differently on the two
    paths: it keeps the DataFrame path.
    """
    if not hasattr(learner, "matrix_encoders"):
        return None
    cls = type(learner)
    for frame_method, matrix_method in (
        ("predict_outcomes", "predict_outcomes_matrix"), ("predict_contrib", "predict_contrib_matrix"),
    ):
        frame_owner, matrix_owner = _owner(cls, frame_method), _owner(cls, matrix_method)
        if frame_owner is None or matrix_owner is None or not issubclass(matrix_owner, frame_owner):
            return None
    return learner.matrix_encoders()  # type: ignore[no-any-return]


class _UpliftBase(ClassifierMixin, BaseEstimator):
    treatment_column: str

    def matrix_encoders(self) -> list[FrameEncoder] | None:
        """Encoders whose candidate rows the matrix methods read; ``None``: no matrix path."""
        return None

    def matrix_models(self) -> list[tuple[Any, bool]]:
        """Tree models ``predict_outcomes_matrix`` runs, each with whether it reads their raw score."""
        return []

    def predict_outcomes_matrix(  # pragma: no cover - abstract
        self, rows: CandidateRows, predict: MatrixPredict = lightgbm_predict
    ) -> tuple[np.ndarray, np.ndarray]:
        """``predict_outcomes`` of candidate rows given encoded (``rows(encoder)``)."""
        raise NotImplementedError

    def predict_contrib_matrix(self, rows: CandidateRows) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        """``predict_contrib`` of encoded candidate rows: ``(values, column names)``, ``bias`` included."""
        raise NotImplementedError

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """``p_treated - p_control`` per row."""
        p1, p0 = self.predict_outcomes(X)
        return p1 - p0

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int8)


class SLearner(_UpliftBase):
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
        t = _treatment(X, self.treatment_column)
        self.classes_ = np.array([0, 1])
        if fit_params.get("eval_set") is not None:
            X_val, y_val = fit_params["eval_set"]  # type: ignore[misc]
            X_val = self._with_treatment(X_val, _treatment(X_val, self.treatment_column))
            fit_params = {**fit_params, "eval_set": (X_val, y_val)}
        self.estimator_ = clone(self.estimator).fit(self._with_treatment(X, t), y, **fit_params)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict_proba(self._with_treatment(X, _treatment(X, self.treatment_column)))

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
        if not _encoded(estimator) or self.treatment_column not in set(map(str, estimator.encoder_.feature_names_in_)):
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
        names = _contrib_names(self.estimator_)
        keep = names != self.treatment_column
        return contrib[:, keep], names[keep]


class TLearner(_UpliftBase):
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
        t = _treatment(X, self.treatment_column)
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
        t = _treatment(X, self.treatment_column)
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
        return [m.encoder_ for m in models] if _encoded(*models) else None

    def matrix_models(self) -> list[tuple[Any, bool]]:
        return [(self.treated_, False), (self.control_, False)]

    def predict_outcomes_matrix(
        self, rows: CandidateRows, predict: MatrixPredict = lightgbm_predict
    ) -> tuple[np.ndarray, np.ndarray]:
        p1 = predict(self.treated_, rows(self.treated_.encoder_), False)
        return p1, predict(self.control_, rows(self.control_.encoder_), False)

    def predict_contrib_matrix(self, rows: CandidateRows) -> tuple[np.ndarray, np.ndarray]:
        contrib = self.treated_.predict_matrix(rows(self.treated_.encoder_), pred_contrib=True)
        return contrib, _contrib_names(self.treated_)


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
        t = _treatment(X, self.treatment_column)
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
        return [m.encoder_ for m in models] if _encoded(*models) else None

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


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class ShiftLearner(_UpliftBase):
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
        t = _treatment(X, self.treatment_column)
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
            t_val = _treatment(X_val, self.treatment_column)
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
        t = _treatment(X, self.treatment_column)
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
        if not _encoded(base, effect):
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
        names = _contrib_names(self.effect_)
        base_names = _contrib_names(self.baseline_)
        if list(base_names) != list(names):
            # As predict_contrib's aligned add: a column only the effect reads gets 0 from the baseline.
            where = {c: i for i, c in enumerate(base_names)}
            base = np.column_stack([base[:, where[c]] if c in where else np.zeros(len(base)) for c in names])
        return base + effect, names


class BaggedLearner(_UpliftBase):
    """Average of ``n_members`` clones of an uplift learner fitted on row subsamples.

    Uplift is a small difference of two noisy estimates, and a policy that picks
    the best of some eighty candidates per customer picks the noisiest ones
    (the winner's curse): averaging members that saw different rows and features
    cuts that noise at the cost of ``n_members`` fits.

    Parameters
    ----------
    learner
        Uplift learner to clone; its nested estimators' ``random_state`` and
        ``bagging_fraction`` are set per member.
    n_members
        Number of members.
    subsample
        Share of rows each boosting round of a member sees (LightGBM bagging).
    treatment_column
        Boolean column of ``X`` telling whether the row was contacted.

    Attributes
    ----------
    members_ : list of fitted learners.
    """

    def __init__(
        self, learner: _UpliftBase, n_members: int = 3, subsample: float = 0.8, treatment_column: str = "contacted"
    ) -> None:
        self.learner = learner
        self.n_members = n_members
        self.subsample = subsample
        self.treatment_column = treatment_column

    def _member(self, i: int) -> _UpliftBase:
        member = clone(self.learner)
        params = member.get_params(deep=True)
        seed = {k: params[k] + i for k in params if k.endswith("random_state")}
        bag = {k: self.subsample for k in params if k.endswith("bagging_fraction")}
        return member.set_params(**seed, **bag)

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series, **fit_params: object) -> BaggedLearner:
        if self.n_members < 1:
            raise BadInputError(f"n_members must be at least 1, got {self.n_members}")
        if not 0.0 < self.subsample <= 1.0:
            raise BadInputError(f"subsample must be in (0, 1], got {self.subsample}")
        self.classes_ = np.array([0, 1])
        self.members_ = [self._member(i).fit(X, y, **fit_params) for i in range(self.n_members)]
        return self

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        outcomes = [m.predict_outcomes(X) for m in self.members_]
        return np.mean([p1 for p1, _ in outcomes], axis=0), np.mean([p0 for _, p0 in outcomes], axis=0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.mean([m.predict_proba(X) for m in self.members_], axis=0)

    def predict_contrib(self, X: pd.DataFrame) -> pd.DataFrame:
        frames = [m.predict_contrib(X) for m in self.members_]
        return sum(frames[1:], frames[0]) / len(frames)

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        parts = [m.feature_importance(importance_type) for m in self.members_]
        return (sum(parts[1:], parts[0]) / len(parts)).sort_values(ascending=False)

    # ------------------------------------------------------------------ matrix path
    def matrix_encoders(self) -> list[FrameEncoder] | None:
        encoders: list[FrameEncoder] = []
        for member in getattr(self, "members_", None) or []:
            found = matrix_encoders_of(member)
            if found is None:
                return None
            encoders += found
        return encoders or None

    def matrix_models(self) -> list[tuple[Any, bool]]:
        return [part for m in self.members_ for part in m.matrix_models()]

    def predict_outcomes_matrix(
        self, rows: CandidateRows, predict: MatrixPredict = lightgbm_predict
    ) -> tuple[np.ndarray, np.ndarray]:
        outcomes = [m.predict_outcomes_matrix(rows, predict) for m in self.members_]
        return np.mean([p1 for p1, _ in outcomes], axis=0), np.mean([p0 for _, p0 in outcomes], axis=0)

    def predict_contrib_matrix(self, rows: CandidateRows) -> tuple[np.ndarray, np.ndarray]:
        parts = [m.predict_contrib_matrix(rows) for m in self.members_]
        names = parts[0][1]
        if any(list(n) != list(names) for _, n in parts[1:]):
            # Members are clones fitted on one frame; differing columns mean a bundle this path does not know.
            raise ValueError("bagged members report different contribution columns; score through the DataFrame")
        values = [v for v, _ in parts]
        # Summed in member order, as predict_contrib sums the frames.
        return sum(values[1:], values[0]) / len(values), names


LEARNERS: dict[str, type[_UpliftBase]] = {"s": SLearner, "t": TLearner, "x": XLearner, "shift": ShiftLearner}
