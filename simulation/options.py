"""What a simulation runs (:class:`SimulationOptions`, validated once) and what it returns (:class:`SimulationRun`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nextbest.config import Experiment
from nextbest.errors import BadInputError
from nextbest.simulation.accounting import PolicyResult
from nextbest.simulation.policies import MODEL_POLICIES, check_policies


@dataclass(frozen=True)
class SimulationOptions:
    """What to simulate; validated by :meth:`check`.

    Attributes
    ----------
    days
        Simulated days.
    policies
        Policies to compare (``none`` is always added).
    campaign_share
        Share of known customers in each day's campaign (triggered customers come on top).
    features_every
        Rebuild the feature snapshot every this many days (1 = daily).
    retrain_every
        Train a challenger and run the promotion gate every this many days (0 = never);
        only model policies retrain.
    tune_trials
        Optuna trials of each retraining.
    seed
        Seeds the campaign sample and the exploration draws (the world has its own seed).
    served
        Policies ranked through a real ``nextbest serve`` process over HTTP (model
        policies only: the service scores with registered models).
    http_feedback
        For served policies, post every outcome to ``POST /feedback`` (one request each);
        ``False`` stores a day's outcomes in one batch through the same function the
        endpoint calls (:func:`nextbest.live.register.record_outcomes`), which the
        demo uses to stay fast.
    run_name
        Folder under ``<workspace>/simulations``; default a timestamp.
    experiment
        Experiment of the ``experiment`` policy (default: the workspace's configured one).
    decision_hour
        Hour of the day decisions are made at.
    period_days
        Days per period of the learning curve (each policy's share of the oracle per period).
    jobs
        Policies simulated at once, each in its own worker process (:mod:`.processes`);
        the results are the same as one after the other.
    """

    days: int = 30
    policies: tuple[str, ...] = ("champion",)
    campaign_share: float = 0.05
    features_every: int = 1
    retrain_every: int = 0
    tune_trials: int = 0
    seed: int = 0
    served: tuple[str, ...] = ()
    http_feedback: bool = True
    run_name: str | None = None
    experiment: Experiment | None = None
    decision_hour: int = 10
    period_days: int = 10
    jobs: int = 1

    def check(self) -> SimulationOptions:
        """Validated copy with ``none`` added to the policies.

        Raises
        ------
        BadInputError
            Naming the option and the accepted values.
        """
        if self.days < 1:
            raise BadInputError(f"--days must be at least 1, got {self.days}")
        if not 0 <= self.campaign_share <= 1:
            raise BadInputError(f"--campaign-share must be between 0 and 1, got {self.campaign_share}")
        if self.features_every < 1:
            raise BadInputError(f"--features-every must be at least 1 day, got {self.features_every}")
        if self.retrain_every < 0:
            raise BadInputError(f"--retrain-every must be 0 (never) or a number of days, got {self.retrain_every}")
        if self.tune_trials < 0:
            raise BadInputError(f"--tune must be 0 or a number of trials, got {self.tune_trials}")
        if self.period_days < 1:
            raise BadInputError(f"--period-days must be at least 1 day, got {self.period_days}")
        if self.jobs < 1:
            raise BadInputError(f"--jobs must be at least 1 (one policy at a time), got {self.jobs}")
        if not 0 <= self.decision_hour <= 23:
            raise BadInputError(f"decision_hour must be 0..23, got {self.decision_hour}")
        not_model = [p for p in self.served if p not in MODEL_POLICIES]
        if not_model:
            raise BadInputError(
                f"policy {not_model[0]!r} cannot run through the service: it serves registered models only "
                f"({', '.join(sorted(MODEL_POLICIES))})"
            )
        if self.run_name is not None and (not self.run_name or "/" in self.run_name or self.run_name.startswith(".")):
            raise BadInputError(f"--run {self.run_name!r}: use a plain folder name, e.g. 2024-demo")
        return SimulationOptions(**{**self.__dict__, "policies": check_policies(list(self.policies))})


@dataclass(frozen=True)
class SimulationRun:
    """A finished simulation: where it lives, when it ran, and each policy's result."""

    folder: Path
    start: dt.date
    end: dt.date
    options: SimulationOptions
    results: list[PolicyResult]
    seconds: float
    retraining: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Policy -> URL of the scoring service it was ranked through (stopped since).
    services: dict[str, str] = field(default_factory=dict)

    def result(self, policy: str) -> PolicyResult:
        for r in self.results:
            if r.policy == policy:
                return r
        raise KeyError(policy)

    def as_json(self) -> list[dict[str, Any]]:
        """The ``--json`` document: one object per policy."""
        return [r.as_dict() for r in self.results]
