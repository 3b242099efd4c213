"""A bagged ensemble of uplift learners: members fitted on row subsamples, averaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from nextbest.errors import BadInputError
from nextbest.models.encoding import FrameEncoder
from nextbest.models.uplift_base import CandidateRows, MatrixPredict, UpliftLearner, lightgbm_predict, matrix_encoders_of


class BaggedLearner(UpliftLearner):
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
        self, learner: UpliftLearner, n_members: int = 3, subsample: float = 0.8, treatment_column: str = "contacted"
    ) -> None:
        self.learner = learner
        self.n_members = n_members
        self.subsample = subsample
        self.treatment_column = treatment_column

    def _member(self, i: int) -> UpliftLearner:
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
