"""Every learner's matrix methods give what its frame methods give."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.models import s_learner
from nextbest.models.bagged_learner import BaggedLearner
from nextbest.models.lgbm import LGBMResponseClassifier, LGBMValueRegressor
from nextbest.models.s_learner import SLearner
from nextbest.models.shift_learner import ShiftLearner
from nextbest.models.t_learner import TLearner
from nextbest.models.uplift_base import UpliftLearner, matrix_encoders_of
from nextbest.models.x_learner import XLearner

from .conftest import make_frame


def _learners() -> dict[str, UpliftLearner]:
    def clf(**kw: object) -> LGBMResponseClassifier:
        params = {"n_estimators": 10, "num_leaves": 7, "early_stopping_rounds": None, "categorical": ("channel",)}
        return LGBMResponseClassifier(**(params | kw))  # type: ignore[arg-type]

    effect = LGBMValueRegressor(n_estimators=10, num_leaves=7, min_child_samples=50)
    return {
        "s": SLearner(clf(), treatment_features=("channel",)),
        "t": TLearner(clf()),
        "x": XLearner(clf(), effect_estimator=effect),
        "shift": ShiftLearner(clf(), clf(num_leaves=3), treatment_features=("channel",)),
        "bagged-shift": BaggedLearner(ShiftLearner(clf(), clf(num_leaves=3), treatment_features=("channel",)), n_members=2),
    }


@pytest.mark.parametrize("rows", [7, s_learner._STACK_ROWS + 5], ids=["stacked", "in-place"])
@pytest.mark.parametrize("name", ["s", "t", "x", "shift", "bagged-shift"])
def test_matrix_methods_equal_the_frame_methods(name: str, rows: int) -> None:
    """``predict_outcomes_matrix``/``predict_contrib_matrix`` on encoded rows give what the frame methods give."""
    X, y, _ = make_frame(3_000, seed=2)
    model = _learners()[name].fit(X, y)
    sample = make_frame(rows, seed=3)[0]
    # As CandidateMatrix encodes: the treatment column a placeholder the learner sets per arm.
    encoded = {id(e): e.transform(sample.assign(contacted=np.nan)) for e in matrix_encoders_of(model) or []}
    assert encoded

    def rows_of(encoder: object) -> np.ndarray:
        m = encoded[id(encoder)]
        m.flags.writeable = False  # shared by the models of one encoding: a learner must not write into it
        return m

    for ours, theirs in zip(model.predict_outcomes_matrix(rows_of), model.predict_outcomes(sample), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    values, names = model.predict_contrib_matrix(rows_of)
    frame = model.predict_contrib(sample)
    assert list(names) == list(frame.columns)
    np.testing.assert_array_equal(values, frame.to_numpy())
