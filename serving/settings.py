"""Service settings: read once from the environment when a worker starts.

The scoring service runs inside BentoML worker processes that ``nextbest serve``
(or ``bentoml serve``) spawns; the environment is the one channel both launchers
share, so every knob is an environment variable with a documented default.

==============================  =======================================================
``NEXTBEST_WORKSPACE``          workspace folder (default ``./workspace``)
``NEXTBEST_API_TOKEN``          bearer token; unset = no authentication
``NEXTBEST_LIVE_URL``           live store (SQLAlchemy URL; default ``sqlite:///<workspace>/live.db``)
``NEXTBEST_COMMIT_GATHER_MS``   how long a commit waits for more rows to share its transaction (0)
``NEXTBEST_BATCH_CHUNK``        customers per engine call in ``/rank_batch`` (1000)
``NEXTBEST_RANK_BATCH_MAX``     customers accepted by one ``/rank_batch`` call (20000)
``NEXTBEST_MICROBATCH_MS``      how long ``/rank`` waits to join concurrent requests (0)
``NEXTBEST_MICROBATCH_MAX``     most ``/rank`` requests ranked in one engine call (64)
``NEXTBEST_LOCK_TIMEOUT_S``     how long a store is retried (a locked warehouse read, a live commit) before 503 (10)
``NEXTBEST_REASON_MEMO``        model reason codes kept per loaded state, 0 = none (200000)
``NEXTBEST_SEED``               base seed of the exploration draw (0)
``NEXTBEST_COMPILED_TREES``     score with the tree model compiled by lleaves (true)
``NEXTBEST_RANK_INLINE``        rank /rank on the event loop when nothing would wait (true)
``NEXTBEST_PLAN_CACHE``         customers' decision plans kept per loaded state, 0 = none (100000)
``NEXTBEST_PLAN_REASONS``       leading actions whose reason codes a plan holds (3)
``NEXTBEST_BENCHMARK_NOOP``     add ``POST /noop``, a route doing nothing, for benchmarks (false)
``NEXTBEST_MAX_PAST_DAYS``      oldest timestamp a request may carry, in days before now (3650)
``NEXTBEST_MAX_FUTURE_DAYS``    latest timestamp a request may carry, in days after now (1)
==============================  =======================================================

Every timestamp of a request (``context.timestamp`` of ``/rank`` and
``/rank_batch``, ``timestamp`` of ``/feedback``) must lie in that window, else
the answer is 422 naming the field and the window. The default reaches ten
years back, so replays of past days (the demo world decides in 2024) work; a
day ahead absorbs clock skew. Fractions are fine (``0.25`` = six hours).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextbest.errors import BadInputError
from nextbest.serving.validation import FUTURE_ENV, PAST_ENV, TimeWindow
from nextbest.workspace import Workspace

TOKEN_ENV = "NEXTBEST_API_TOKEN"

_ENV: dict[str, str] = {
    "api_token": TOKEN_ENV,
    "batch_chunk": "NEXTBEST_BATCH_CHUNK",
    "rank_batch_max": "NEXTBEST_RANK_BATCH_MAX",
    "microbatch_ms": "NEXTBEST_MICROBATCH_MS",
    "microbatch_max": "NEXTBEST_MICROBATCH_MAX",
    "lock_timeout_s": "NEXTBEST_LOCK_TIMEOUT_S",
    "commit_gather_ms": "NEXTBEST_COMMIT_GATHER_MS",
    "seed": "NEXTBEST_SEED",
    "reason_memo": "NEXTBEST_REASON_MEMO",
    "compiled_trees": "NEXTBEST_COMPILED_TREES",
    "rank_inline": "NEXTBEST_RANK_INLINE",
    "plan_cache": "NEXTBEST_PLAN_CACHE",
    "plan_reasons": "NEXTBEST_PLAN_REASONS",
    "benchmark_noop": "NEXTBEST_BENCHMARK_NOOP",
    "max_past_days": PAST_ENV,
    "max_future_days": FUTURE_ENV,
}


class ServeSettings(BaseModel):
    """Validated service settings (see the module docstring for the variables)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    workspace: Workspace
    api_token: str | None = Field(default=None, min_length=8, description="Bearer token; None = open.")
    batch_chunk: int = Field(default=1000, ge=1, le=100_000)
    rank_batch_max: int = Field(default=20_000, ge=1)
    microbatch_ms: float = Field(default=0.0, ge=0, le=1000)
    microbatch_max: int = Field(default=64, ge=1)
    lock_timeout_s: float = Field(default=10.0, gt=0)
    commit_gather_ms: float = Field(default=0.0, ge=0, le=100)
    seed: int = 0
    reason_memo: int = Field(default=200_000, ge=0)
    compiled_trees: bool = True
    rank_inline: bool = True
    plan_cache: int = Field(default=100_000, ge=0)
    plan_reasons: int = Field(default=3, ge=0, le=50)
    #: ``POST /noop`` (``benchmarks/serve.py``): the cost of BentoML's HTTP stack alone.
    #: Read when the service class is built, so it holds for every worker.
    benchmark_noop: bool = False
    # At most a century back and ten years ahead: the window stays far from the calendar's ends.
    max_past_days: float = Field(default=3650, ge=0, le=36_500, allow_inf_nan=False)
    max_future_days: float = Field(default=1, ge=0, le=3650, allow_inf_nan=False)

    @property
    def time_window(self) -> TimeWindow:
        """The timestamps requests may carry."""
        return TimeWindow(self.max_past_days, self.max_future_days)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """Settings from ``environ`` (default ``os.environ``).

        Raises
        ------
        BadInputError
            Naming the environment variable and the accepted values.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {"workspace": Workspace.resolve(env.get("NEXTBEST_WORKSPACE"))}
        for field, var in _ENV.items():
            value = env.get(var)
            if value not in (None, ""):
                raw[field] = value
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0])
            var = _ENV.get(field, field)
            raise BadInputError(f"environment variable {var}: {err['msg']}; fix or unset it") from exc
