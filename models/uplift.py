"""The uplift learners by the name the training configuration gives them (``training.uplift_learner``: s, t, x or shift).

What the learners share is in :mod:`~nextbest.models.uplift_base`; the bagged ensemble
(:class:`~nextbest.models.bagged_learner.BaggedLearner`) wraps any of them.
"""

from __future__ import annotations

from nextbest.models.s_learner import SLearner
from nextbest.models.shift_learner import ShiftLearner
from nextbest.models.t_learner import TLearner
from nextbest.models.uplift_base import UpliftLearner
from nextbest.models.x_learner import XLearner

LEARNERS: dict[str, type[UpliftLearner]] = {"s": SLearner, "t": TLearner, "x": XLearner, "shift": ShiftLearner}
