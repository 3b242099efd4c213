"""Request and response documents of the HTTP service.

Ranking answers are the decision documents of :mod:`nextbest.decisioning.documents`
(``nextbest rank --json`` prints the same shape); this module adds the HTTP
request bodies and the service's own answers (feedback receipt, batch, refresh).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.decisioning.documents import Context, RankRequest, RankResponse
from nextbest.serving.validation import FUTURE_ENV, INT64_MAX, INT64_MIN, MAX_REVENUE, PAST_ENV
from nextbest.warehouse.schema import RESPONSES

#: Outcomes a decision can have; the ``responses`` table's vocabulary.
Outcome = Literal[RESPONSES.column("outcome").allowed]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


#: Customer ids and seeds: the warehouse stores ids as BIGINT, the engine as int64. (BentoML's spec
#: renders the bounds as floats, 9.223372036854776e18; ``format: int64`` says what they are.)
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, json_schema_extra={"format": "int64"})]
_WINDOW = (
    f"Must lie within {PAST_ENV} days before the server's now (default 3650) "
    f"and {FUTURE_ENV} days after it (default 1), else 422."
)
_SEED = "A signed 64-bit integer."


class RankContext(Context):
    """What prompted the decision: inbound channel, event, and the decision time."""

    channel: str | None = Field(
        default=None,
        max_length=100,
        description="Inbound channel the customer is on (e.g. 'web'), a channel id of the configuration; "
        "only actions on it are ranked. An unknown channel is 422.",
        examples=["web"],
    )
    event: str | None = Field(
        default=None,
        max_length=100,
        description="Event feature that just happened (e.g. 'moved_recently'); its triggers fire. "
        "An event no trigger listens to changes nothing.",
        examples=["birthday_within_7d"],
    )
    timestamp: dt.datetime | None = Field(
        default=None,
        description=f"Decision time (ISO 8601); default now. A time without zone is UTC. {_WINDOW}",
        examples=["2024-06-01T09:00:00Z"],
    )


class RankBody(_Body):
    """``POST /rank``: the next best actions of one customer."""

    customer_id: Int64 = Field(
        description="Customer id: a signed 64-bit integer, as the warehouse stores it (negative ids included). "
        "An unknown id gets a cold-start answer (non-personal channels only).",
        examples=[1042],
    )
    context: RankContext = Field(default_factory=RankContext, description="Inbound channel, event and time, if any.")
    top_k: int = Field(default=3, ge=1, le=50, description="How many ranked actions to return.", examples=[3])
    seed: Int64 | None = Field(
        default=None,
        description="Exploration seed: the same customer, time and seed give the same decision as `nextbest rank`. "
        + _SEED,
        examples=[7],
    )

    def to_request(self, *, explain: bool) -> RankRequest:
        """The decision engine's request for this body."""
        return RankRequest(
            customer_id=self.customer_id,
            at=self.context.timestamp,
            context=Context(channel=self.context.channel, event=self.context.event),
            top_k=self.top_k,
            seed=self.seed,
            explain=explain,
        )


class RankBatchBody(_Body):
    """``POST /rank_batch``: the next best actions of many customers with one context."""

    customer_ids: list[Int64] = Field(
        min_length=1,
        description="Customer ids (signed 64-bit integers); each gets its own decision (and decision_id). "
        "Duplicates are ranked once each. At most NEXTBEST_RANK_BATCH_MAX (default 20000) per call.",
        examples=[[1042, 1043, 99999999]],
    )
    context: RankContext = Field(default_factory=RankContext, description="Applies to every customer of the batch.")
    top_k: int = Field(default=3, ge=1, le=50, description="How many ranked actions per customer.", examples=[3])
    seed: Int64 | None = Field(default=None, description="Exploration seed for the batch. " + _SEED, examples=[7])


class RankBatchResult(_Body):
    """``POST /rank_batch`` answer: one decision document per requested customer, in order."""

    count: int = Field(description="Number of decisions.", examples=[3])
    cold_start: int = Field(description="How many of them were cold-start (unknown customer).", examples=[1])
    decisions: list[RankResponse] = Field(description="Decision documents, in the order of customer_ids.")


class FeedbackBody(_Body):
    """``POST /feedback``: an outcome of a logged decision."""

    decision_id: str = Field(min_length=1, max_length=200, description="decision_id returned by /rank.", examples=["6f1c2a-0"])
    outcome: Outcome = Field(description="What happened.", examples=["conversion"])
    revenue: float | None = Field(
        default=None,
        ge=0,
        le=MAX_REVENUE,
        allow_inf_nan=False,
        description=f"Revenue of a conversion: a finite number from 0 to {MAX_REVENUE:,.0f}.",
        examples=[59.9],
    )
    timestamp: dt.datetime = Field(
        description=f"When the outcome happened (ISO 8601); a time without zone is UTC. {_WINDOW}",
        examples=["2024-06-02T18:30:00Z"],
    )


class FeedbackReceipt(_Body):
    """``POST /feedback`` answer (HTTP 202): the outcome is durably stored."""

    decision_id: str = Field(description="The decision the outcome was recorded for.", examples=["6f1c2a-0"])
    outcome: Outcome = Field(description="The recorded outcome.", examples=["conversion"])
    duplicate: bool = Field(description="True when this (decision_id, outcome) had been recorded before; nothing changed.")


class RefreshReport(_Body):
    """``POST /admin/refresh`` answer: the models now serving."""

    changed: bool = Field(description="Whether a different champion or challenger was loaded.")
    model_versions: dict[str, str] = Field(
        description="Registry alias -> model version now serving.", examples=[{"champion": "nextbest-response/4"}]
    )
    loaded_at: dt.datetime = Field(description="When the serving state was built (UTC).")


class ErrorBody(_Body):
    """Every error answer."""

    error: str = Field(description="What went wrong and how to fix it.", examples=["body.customer_id: Field required"])
    detail: list[dict[str, object]] | None = Field(default=None, description="Validation errors, one per field.")
