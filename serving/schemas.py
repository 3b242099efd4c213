"""Request and response documents of the HTTP service.

Ranking answers are the decision documents of :mod:`nextbest.decisioning.documents`
(``nextbest rank --json`` prints the same shape); this module adds the HTTP
request bodies and the service's own answers (feedback receipt, batch, refresh).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.decisioning.documents import Context, RankRequest, RankResponse
from nextbest.warehouse.schema import RESPONSES

#: Outcomes a decision can have; the ``responses`` table's vocabulary.
Outcome = Literal[RESPONSES.column("outcome").allowed]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RankContext(Context):
    """What prompted the decision: inbound channel, event, and the decision time."""

    timestamp: dt.datetime | None = Field(
        default=None,
        description="Decision time (ISO 8601); default now. A time without zone is UTC.",
        examples=["2024-06-01T09:00:00Z"],
    )


class RankBody(_Body):
    """``POST /rank``: the next best actions of one customer."""

    customer_id: int = Field(
        description="Customer id (integer). An unknown id gets a cold-start answer (non-personal channels only).",
        examples=[1042],
    )
    context: RankContext = Field(default_factory=RankContext, description="Inbound channel, event and time, if any.")
    top_k: int = Field(default=3, ge=1, le=50, description="How many ranked actions to return.", examples=[3])
    seed: int | None = Field(
        default=None,
        description="Exploration seed: the same customer, time and seed give the same decision as `nextbest rank`.",
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

    customer_ids: list[int] = Field(
        min_length=1,
        description="Customer ids; each gets its own decision (and decision_id). Duplicates are ranked once each.",
        examples=[[1042, 1043, 99999999]],
    )
    context: RankContext = Field(default_factory=RankContext, description="Applies to every customer of the batch.")
    top_k: int = Field(default=3, ge=1, le=50, description="How many ranked actions per customer.", examples=[3])
    seed: int | None = Field(default=None, description="Exploration seed for the batch.", examples=[7])


class RankBatchResult(_Body):
    """``POST /rank_batch`` answer: one decision document per requested customer, in order."""

    count: int = Field(description="Number of decisions.", examples=[3])
    cold_start: int = Field(description="How many of them were cold-start (unknown customer).", examples=[1])
    decisions: list[RankResponse] = Field(description="Decision documents, in the order of customer_ids.")


class FeedbackBody(_Body):
    """``POST /feedback``: an outcome of a logged decision."""

    decision_id: str = Field(min_length=1, max_length=200, description="decision_id returned by /rank.", examples=["6f1c2a-0"])
    outcome: Outcome = Field(description="What happened.", examples=["conversion"])
    revenue: float | None = Field(default=None, ge=0, description="Revenue of a conversion.", examples=[59.9])
    timestamp: dt.datetime = Field(
        description="When the outcome happened (ISO 8601); a time without zone is UTC.", examples=["2024-06-02T18:30:00Z"]
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
