"""What every uplift learner shares: the treatment column, the base class and the matrix path.

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

The learners themselves: :mod:`~nextbest.models.s_learner`, :mod:`~nextbest.models.t_learner`,
:mod:`~nextbest.models.x_learner`, :mod:`~nextbest.models.shift_learner` and the
ensemble :mod:`~nextbest.models.bagged_learner`; :mod:`~nextbest.models.uplift`
names them for the training configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from nextbest.errors import BadInputError
from nextbest.models.encoding import FrameEncoder


def treatment_flags(X: pd.DataFrame, column: str) -> np.ndarray:
    if column not in X.columns:
        raise BadInputError(f"uplift training frame lacks the treatment column {column!r} (decisions.contacted)")
    t = X[column].astype("boolean")
    if t.isna().any():
        raise BadInputError(f"treatment column {column!r} has nulls; drop decisions whose contacted flag is unknown")
    return t.to_numpy(dtype=bool)

#: Candidate rows as an encoder encodes them: ``rows(encoder)`` is a (n, F) matrix in
#: ``encoder.feature_names_in_`` order, the treatment column (if any) a placeholder.
#: The same matrix may serve several models: never write into it.
CandidateRows = Callable[[FrameEncoder], np.ndarray]
#: Runs a tree model on an encoded matrix: ``predict(model, matrix, raw_score)``.
MatrixPredict = Callable[[Any, np.ndarray, bool], np.ndarray]


def lightgbm_predict(model: Any, matrix: np.ndarray, raw_score: bool = False) -> np.ndarray:
    """``model.predict_matrix(matrix)`` (raw scores when ``raw_score``): what the DataFrame path runs."""
    return model.predict_matrix(matrix, raw_score=True) if raw_score else model.predict_matrix(matrix)


def all_encoded(*models: object) -> bool:
    """Whether every model predicts from an encoded matrix (an encoded LightGBM estimator)."""
    return all(
        hasattr(m, "predict_matrix") and hasattr(getattr(m, "encoder_", None), "_levels") for m in models
    )


def contrib_names(model: Any) -> np.ndarray:
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

def frame_rows(learner: object, X: pd.DataFrame) -> CandidateRows:
    """``rows(encoder)`` over the candidate rows of ``X`` (model columns, derived ones included): each
    of the learner's distinct encodings made once, for its matrix methods.

    What a benchmark times the trees on, apart from the pandas work of encoding.

    Raises
    ------
    ValueError
        When the learner has no matrix path.
    """
    encoders = matrix_encoders_of(learner)
    if not encoders:
        raise ValueError(f"{type(learner).__name__} has no matrix path")
    encoded = {id(e): e.transform(X) for e in encoders}
    return lambda encoder: encoded[id(encoder)]


class UpliftLearner(ClassifierMixin, BaseEstimator):
    """Base of the uplift learners: ``predict_uplift``, ``predict`` and the matrix path's defaults (none)."""

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
