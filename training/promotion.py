"""``nextbest promote``: move the ``champion`` alias to the challenger, only if it is better.

Both models are scored on the *challenger's* held-out test period (the latest
decisions, which neither model was fitted on) rebuilt from the warehouse, so
the comparison is like for like even when the champion was trained on older
data. The challenger wins when it beats the champion on
``training.promotion.metric`` by at least ``training.promotion.min_improvement``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import pandas as pd

from nextbest.config import PromotionGate
from nextbest.errors import NotFoundError
from nextbest.models.metrics import classification_metrics, uplift_metrics
from nextbest.models.registry import CHALLENGER, CHAMPION, get_version, load_model_version, set_alias
from nextbest.models.response import ResponseModel
from nextbest.training import tracking
from nextbest.training.dataset import TrainingSet
from nextbest.workspace import Workspace

#: Metrics where lower is better; the others are higher-is-better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"test_logloss", "test_brier"})


@dataclass(frozen=True)
class PromotionDecision:
    """The verdict and why."""

    promoted: bool
    reason: str
    metric: str
    challenger_version: str
    champion_version: str | None = None
    challenger_value: float | None = None
    champion_value: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def improvement(metric: str, champion: float, challenger: float) -> float:
    """How much better the challenger is (positive = better), whatever the metric's direction."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def decide(gate: PromotionGate, champion: float, challenger: float) -> tuple[bool, str]:
    """Whether ``challenger`` clears the gate over ``champion``, with the reason in words."""
    if not (np.isfinite(champion) and np.isfinite(challenger)):
        return False, f"{gate.metric} is not computable on the test period (champion {champion}, challenger {challenger})"
    gain = improvement(gate.metric, champion, challenger)
    direction = "lower" if gate.metric in LOWER_IS_BETTER else "higher"
    if gain >= gate.min_improvement:
        return True, (f"challenger {gate.metric} {challenger:.4f} vs champion {champion:.4f}: "
                      f"better by {gain:.4f} >= {gate.min_improvement} ({direction} is better)")
    return False, (f"challenger {gate.metric} {challenger:.4f} vs champion {champion:.4f}: improvement {gain:+.4f} "
                   f"is below the required {gate.min_improvement} ({direction} is better); champion kept")


def metric_on(model: ResponseModel, test: TrainingSet, metric: str) -> float:
    """``metric`` of ``model`` on ``test`` (a name of :class:`PromotionGate`)."""
    if metric == "test_qini":
        uplift = model.score(test.frame)["uplift"].to_numpy()
        return uplift_metrics(test.y, uplift, test.frame["contacted"].to_numpy(), prefix="test_")[metric]
    return classification_metrics(test.y, model.predict_observed(test.X), prefix="test_")[metric]


def challenger_test_set(data: TrainingSet, run_id: str) -> TrainingSet:
    """The rows of the challenger run's test period (``test_from`` .. ``decisions_to`` params)."""
    params = mlflow.get_run(run_id).data.params
    lo, hi = pd.Timestamp(params["test_from"]), pd.Timestamp(params["decisions_to"])
    ts = pd.to_datetime(data.frame["ts"])
    mask = ((ts >= lo) & (ts <= hi)).to_numpy()
    if not mask.any():
        raise NotFoundError(f"the warehouse has no decisions in the challenger's test period {lo} .. {hi}")
    return data.subset(mask)


def promote(ws: Workspace, *, data: TrainingSet | None = None) -> PromotionDecision:
    """Compare challenger and champion on the challenger's test period and move the alias if it wins.

    Parameters
    ----------
    ws
        Workspace (tracking store, warehouse, promotion gate in the config).
    data
        Training set to take the test rows from; ``None`` rebuilds it from the warehouse.
    """
    config = ws.config()
    gate = config.training.promotion
    uri = tracking.use_workspace(ws)
    challenger = get_version(uri, CHALLENGER)
    if challenger is None:
        raise NotFoundError("no challenger model registered — run `nextbest train`")
    champion = get_version(uri, CHAMPION)
    if champion is None:
        set_alias(uri, CHAMPION, challenger.version)
        return PromotionDecision(True, "no champion yet: the challenger becomes champion", gate.metric, challenger.version)
    if champion.version == challenger.version:
        return PromotionDecision(False, f"version {challenger.version} is already the champion", gate.metric,
                                 challenger.version, champion.version)
    if data is None:
        from nextbest.training.trainer import load_training_set

        data, _ = load_training_set(ws, config)
    test = challenger_test_set(data, challenger.run_id or "")
    value_new = metric_on(load_model_version(uri, challenger), test, gate.metric)
    value_old = metric_on(load_model_version(uri, champion), test, gate.metric)
    promoted, reason = decide(gate, value_old, value_new)
    if promoted:
        set_alias(uri, CHAMPION, challenger.version)
    return PromotionDecision(promoted, reason, gate.metric, challenger.version, champion.version, value_new, value_old)
