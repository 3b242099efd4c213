"""LightGBM estimators over DataFrames, in scikit-learn form.

Both estimators own a :class:`~nextbest.models.encoding.FrameEncoder` and a
native :class:`lightgbm.Booster`: training and prediction go straight through
``lightgbm.train`` / ``Booster.predict`` on a float matrix (no pandas round
trips on the hot path), while ``get_params``/``set_params``/``clone`` work as
for any scikit-learn estimator so Optuna and pipelines can drive them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from nextbest.errors import BadInputError
from nextbest.models.encoding import FrameEncoder


class _LGBMBase(BaseEstimator):
    """Shared parameters, training and contribution logic."""

    _objective: str = "binary"
    #: Bundles pickled before monotone constraints existed read this default.
    monotone: dict[str, int] | None = None

    def __init__(
        self,
        *,
        n_estimators: int = 400,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        feature_fraction: float = 0.9,
        bagging_fraction: float = 1.0,
        lambda_l2: float = 1.0,
        cat_smooth: float = 10.0,
        early_stopping_rounds: int | None = 30,
        categorical: Sequence[str] = (),
        defaults: dict[str, float] | None = None,
        ignored_features: Sequence[str] = (),
        monotone: dict[str, int] | None = None,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.cat_smooth = cat_smooth
        self.early_stopping_rounds = early_stopping_rounds
        self.categorical = categorical
        self.defaults = defaults
        self.ignored_features = ignored_features
        self.monotone = monotone
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "objective": self._objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1.0 else 0,
            "lambda_l2": self.lambda_l2,
            "cat_smooth": self.cat_smooth,
            "seed": self.random_state,
            "num_threads": self.n_jobs,
            "verbosity": -1,
            "deterministic": True,
            "force_col_wise": True,
        }

    def _feature_penalty(self) -> list[float] | None:
        # A zero split-gain penalty keeps a column out of every tree while it stays in the
        # encoded matrix, so a model sharing this one's encoding can still read it.
        if not self.ignored_features:
            return None
        names = list(self.encoder_.feature_names_in_)
        unknown = sorted(set(self.ignored_features) - set(names))
        if unknown:
            raise BadInputError(
                f"ignored_features: {unknown} are not columns of the training frame; remove them "
                "(for the shift learner: from training.effect_ignored_features)"
            )
        return [0.0 if name in self.ignored_features else 1.0 for name in names]

    def _monotone_constraints(self) -> list[int] | None:
        # Columns of the frame only: a constraint on a column the frame lacks has nothing to hold.
        if not self.monotone:
            return None
        bad = {c: d for c, d in self.monotone.items() if d not in (-1, 0, 1)}
        if bad:
            raise BadInputError(f"monotone: directions must be -1, 0 or 1, got {bad}")
        names = list(self.encoder_.feature_names_in_)
        cats = {names[i] for i in self.encoder_.categorical_indices_}
        categorical = sorted(set(self.monotone) & cats)
        if categorical:
            raise BadInputError(f"monotone: {categorical} are categorical; only numeric columns can be constrained")
        constraints = [int(self.monotone.get(name, 0)) for name in names]
        return constraints if any(constraints) else None

    def _fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        eval_set: tuple[pd.DataFrame, np.ndarray] | None,
        callbacks: Sequence[Any] | None,
        init_score: np.ndarray | None = None,
        eval_init_score: np.ndarray | None = None,
    ) -> None:
        self.encoder_ = FrameEncoder(categorical=self.categorical, defaults=self.defaults).fit(X)
        matrix = self.encoder_.transform(X)
        cats = self.encoder_.categorical_indices_
        train = lgb.Dataset(
            matrix, label=y, weight=sample_weight, init_score=init_score, categorical_feature=cats, free_raw_data=True
        )
        valid_sets, valid_names = [], []
        cbs = list(callbacks or [])
        if eval_set is not None:
            X_val, y_val = eval_set
            valid_sets.append(
                lgb.Dataset(
                    self.encoder_.transform(X_val), label=np.asarray(y_val), init_score=eval_init_score, reference=train
                )
            )
            valid_names.append("valid")
            if self.early_stopping_rounds:
                cbs.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        params = self._lgb_params()
        penalty = self._feature_penalty()
        if penalty is not None:
            params["feature_penalty"] = penalty
        monotone = self._monotone_constraints()
        if monotone is not None:
            params["monotone_constraints"] = monotone
        self.booster_ = lgb.train(
            params,
            train,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            valid_names=valid_names,
            callbacks=cbs,
        )
        self.n_features_in_ = self.encoder_.n_features_in_
        self.feature_names_in_ = self.encoder_.feature_names_in_

    def _raw(self, X: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        return self.predict_matrix(self.encoder_.transform(X), **kwargs)

    def predict_matrix(self, matrix: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Raw booster output for an already encoded matrix (``encoder_.transform``)."""
        return self.booster_.predict(
            matrix,
            num_iteration=self.booster_.best_iteration or None,
            num_threads=self.n_jobs,
            **kwargs,
        )

    def predict_contrib(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions (SHAP values from ``pred_contrib``) in raw score units.

        The frame has one column per feature plus ``bias``; rows sum to the raw score
        (log-odds for the classifier).
        """
        contrib = self._raw(X, pred_contrib=True)
        return pd.DataFrame(contrib, columns=[*self.feature_names_in_, "bias"], index=X.index)

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        """Total gain (or split count) per feature, highest first."""
        imp = self.booster_.feature_importance(importance_type=importance_type)
        return pd.Series(imp, index=self.feature_names_in_, name=importance_type).sort_values(ascending=False)


class LGBMResponseClassifier(ClassifierMixin, _LGBMBase):
    """Gradient-boosted binary classifier of a response label.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, feature_fraction,
    bagging_fraction, lambda_l2, cat_smooth
        LightGBM training parameters (``min_child_samples`` is ``min_data_in_leaf``).
    early_stopping_rounds
        Stop when the validation log loss has not improved for this many rounds
        (only when ``fit`` gets an ``eval_set``); ``None`` trains all rounds.
    categorical
        Columns to treat as categorical besides the non-numeric ones.
    defaults
        Fill values for columns absent at prediction time (see :class:`FrameEncoder`).
    ignored_features
        Columns no tree splits on (LightGBM ``feature_penalty`` 0); they stay in the
        encoding, so contributions report them as exactly 0.
    monotone
        Column -> -1 (prediction never rises with it) or +1 (never falls): LightGBM
        ``monotone_constraints``; columns the training frame lacks are left out.
    random_state, n_jobs
        Seed and thread count for training and prediction (0 = one per core).
        The default is 1: on a machine shared with DuckDB and the scoring
        service, OpenMP threads that busy-wait for cores make LightGBM several
        times *slower* than a single thread; raise it on a dedicated machine.

    Attributes
    ----------
    booster_ : lightgbm.Booster
    encoder_ : FrameEncoder
    classes_ : ndarray, ``[0, 1]``
    """

    _objective = "binary"

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        sample_weight: np.ndarray | None = None,
        eval_set: tuple[pd.DataFrame, np.ndarray] | None = None,
        callbacks: Sequence[Any] | None = None,
        init_score: np.ndarray | None = None,
        eval_init_score: np.ndarray | None = None,
    ) -> LGBMResponseClassifier:
        """Fit the booster.

        ``init_score`` (and ``eval_init_score`` for ``eval_set``) are per-row log-odds
        offsets the trees add to: the model then learns a correction to a known
        score, as :class:`~nextbest.models.shift_learner.ShiftLearner` needs. Predictions
        (``predict_proba``, ``decision_function``) never include the offsets.
        """
        y = np.asarray(y).astype(np.int8)
        self.classes_ = np.array([0, 1])
        self._fit(X, y, sample_weight, eval_set, callbacks, init_score, eval_init_score)
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of the trees (without any training offset)."""
        return self._raw(X, raw_score=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self._raw(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self._raw(X) >= 0.5).astype(np.int8)


class LGBMValueRegressor(RegressorMixin, _LGBMBase):
    """Gradient-boosted regressor of the revenue of a response.

    Same parameters as :class:`LGBMResponseClassifier`; the objective is L2.
    """

    _objective = "regression"

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        sample_weight: np.ndarray | None = None,
        eval_set: tuple[pd.DataFrame, np.ndarray] | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> LGBMValueRegressor:
        self._fit(X, np.asarray(y, dtype=np.float64), sample_weight, eval_set, callbacks)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._raw(X)
