"""The decision document: one JSON shape for ``nextbest rank --json`` and the HTTP service.

A :class:`RankRequest` asks for the next best actions of one customer; the
answer is a :class:`RankResponse` whose ``actions`` are ranked (rank 1 is what to
do now: the policy's choice, exploration included) and whose ``suppressed`` list
explains every candidate the rules removed.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Context(_Doc):
    """What prompted the decision, when something did."""

    channel: str | None = Field(
        default=None,
        description="Inbound channel the customer is on (e.g. 'web'); only actions on it are ranked.",
        examples=["web"],
    )
    event: str | None = Field(
        default=None,
        description="Event feature that just happened (e.g. 'moved_recently'); its triggers fire.",
        examples=["birthday_within_7d"],
    )


class RankRequest(_Doc):
    """Ask for the next best actions of one customer."""

    customer_id: int = Field(description="Customer id (integer). Unknown ids get a cold-start answer.", examples=[1042])
    at: dt.datetime | None = Field(default=None, description="Decision time; default now.", examples=["2024-06-01T09:00:00"])
    context: Context = Field(default_factory=Context, description="Inbound channel and triggering event, if any.")
    top_k: int = Field(default=3, ge=1, le=50, description="How many ranked actions to return.", examples=[3])
    seed: int | None = Field(default=None, description="Exploration seed; the same seed gives the same decision.", examples=[7])
    explain: bool = Field(default=True, description="Include suppressed candidates and the rule that removed each.")


class Personalisation(_Doc):
    """What fills the message: never used by models."""

    salutation: str = Field(description="Greeting from first name and gender.", examples=["Dear Anna"])
    category: str = Field(description="Product category of recent interest, else the offer's.", examples=["shoes"])
    trigger: str | None = Field(default=None, description="Trigger that fired for this offer.", examples=["birthday"])
    message: str = Field(description="The offer's message template, filled.", examples=["Dear Anna, step into the season."])


class Action(_Doc):
    """One ranked action: an (offer, channel) pair, or 'no action' (both null)."""

    rank: int = Field(ge=1, description="1 = the action to take now.", examples=[1])
    offer_id: str | None = Field(description="Offer; null = no action.", examples=["shoes_new_season"])
    channel: str | None = Field(description="Channel; null = no action.", examples=["email"])
    probability: float | None = Field(description="P(response | contacted) from the model.", examples=[0.031])
    uplift: float | None = Field(description="P(response | contacted) - P(response | not contacted).", examples=[0.012])
    value: float = Field(description="Value of a response (offer margin or value, per arbitration.value_field).", examples=[28.0])
    lever: float = Field(description="Business lever of the offer (1 = neutral).", examples=[1.0])
    boost: float = Field(default=1.0, description="Trigger and journey-stage multiplier applied to the gain.", examples=[1.5])
    cost: float = Field(description="Cost of the contact on this channel.", examples=[0.02])
    expected_value: float = Field(
        description="(uplift or probability) x value x lever x boost - cost; the ranking key.", examples=[0.316]
    )
    propensity: float = Field(ge=0, le=1, description="Probability that the policy picks this action as rank 1.", examples=[0.96])
    reasons: list[str] = Field(
        default_factory=list,
        description="Machine-readable reason codes: model contributions, rules and triggers that fired.",
        examples=[["engagement_score:+0.41", "trigger:birthday", "stage:experience"]],
    )
    personalisation: Personalisation | None = Field(default=None, description="Filled message; null for 'no action'.")


class Suppressed(_Doc):
    """A candidate the rules removed, and the rule that removed it."""

    offer_id: str = Field(examples=["reading_glasses"])
    channel: str = Field(examples=["outbound_call"])
    reason: str = Field(
        description="Reason code: no_consent, unreachable, eligibility, segment, stage_gate, channel_stage, "
        "complaint, negative_response, contact_cap, channel_cap, offer_cooldown, offer_cap, channel_capacity.",
        examples=["eligibility"],
    )
    detail: str = Field(default="", description="The rule or limit, e.g. 'age >= 40'.", examples=["age >= 40"])


class RankResponse(_Doc):
    """The ranked next best actions of one customer, as logged in ``decisions``."""

    decision_id: str = Field(description="Id of the logged decision (rank 1).", examples=["6f1c…-0"])
    customer_id: int = Field(examples=[1042])
    at: dt.datetime = Field(description="Decision time.")
    model_version: str | None = Field(description="Model that scored the candidates.", examples=["nextbest-response/3"])
    experiment: str = Field(description="Experiment name.", examples=["nba-2024"])
    arm: str = Field(description="Experiment arm (deterministic per customer).", examples=["champion"])
    contacted: bool = Field(description="False for the control arm and for 'no action'.")
    cold_start: bool = Field(description="No features known: only non-personal channels are proposed.")
    actions: list[Action] = Field(description="Ranked actions; rank 1 is the decision.")
    suppressed: list[Suppressed] | None = Field(default=None, description="Removed candidates (when explain).")
