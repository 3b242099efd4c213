"""Parameters of the synthetic world: shares, rates and effect sizes, in one place.

Everything here is documented in ``docs/synthetic-world.md``; the defaults are tuned so
that base conversion is a few percent per 14 days, uplift is 0-5 points (negative for
sleeping dogs) and the drivers of both are observable in the raw tables. Offers,
channels and their costs are *not* here: they come from the configuration.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

#: Latent response types (the classic uplift quadrants).
SEGMENTS: tuple[str, ...] = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")

#: Basket categories the world adds to the offer catalogue's own categories.
EXTRA_CATEGORIES: tuple[str, ...] = ("pets", "food", "stationery")

REGIONS: tuple[str, ...] = ("capital", "north", "east", "south", "west", "central", "coast", "highlands")
URBANITY: tuple[str, ...] = ("urban", "suburban", "rural")


@dataclass(frozen=True)
class ChannelEffect:
    """How contact through one channel works on a customer.

    The persuasion gain in logit units is ``base + age_slope * (age - 45) / 15 +
    urban/rural shift``; ``intrusiveness`` scales annoyance (sleeping dogs, fatigue,
    complaints); ``engagement_open`` is the open/click outcome the channel produces.
    """

    base: float
    age_slope: float = 0.0
    urban: float = 0.0
    rural: float = 0.0
    intrusiveness: float = 0.3
    open_rate: float = 0.0  # P(open) of an average customer (0: the channel has no opens)
    click_rate: float = 0.05  # P(click | open) or P(click) without opens
    visit_rate: float = 0.0  # P(store visit)
    needs_app: bool = False


DEFAULT_CHANNEL_EFFECTS: dict[str, ChannelEffect] = {
    "email": ChannelEffect(base=0.85, age_slope=0.05, intrusiveness=0.3, open_rate=0.28, click_rate=0.15),
    "sms": ChannelEffect(base=0.75, age_slope=-0.35, urban=0.15, intrusiveness=0.6, click_rate=0.06),
    "push": ChannelEffect(base=0.95, age_slope=-0.5, urban=0.1, intrusiveness=0.4, open_rate=0.12, click_rate=0.25, needs_app=True),
    "direct_mail": ChannelEffect(base=0.55, age_slope=0.45, urban=-0.25, rural=0.3, intrusiveness=0.3, visit_rate=0.04),
    "outbound_call": ChannelEffect(base=0.8, age_slope=0.5, urban=-0.4, rural=0.2, intrusiveness=1.2, visit_rate=0.06),
    "web": ChannelEffect(base=0.3, intrusiveness=0.0, click_rate=0.03),
}
#: Profile of a channel the world does not know (a user-added channel).
UNKNOWN_CHANNEL_EFFECT = ChannelEffect(base=0.5, intrusiveness=0.5, click_rate=0.05)

#: Seasonality of category demand: (amplitude in logit units, peak day of year).
DEFAULT_SEASONALITY: dict[str, tuple[float, int]] = {
    "garden": (0.35, 130),
    "kids": (0.3, 235),
    "electronics": (0.3, 340),
    "fashion_women": (0.15, 85),
    "fashion_men": (0.15, 270),
    "shoes": (0.15, 95),
    "sports": (0.2, 10),
    "home": (0.1, 300),
    "beauty": (0.15, 345),
    "books": (0.15, 350),
    "health": (0.1, 30),
}


@dataclass(frozen=True)
class WorldParams:
    """All knobs of the world. Frozen; stored as JSON in ``ground_truth.seeded_defects``."""

    # ---- population
    join_during_share: float = 0.12  # share of customers who join during the simulated period
    mean_tenure_days: float = 700.0
    birth_date_missing_share: float = 0.04
    app_user_base_logit: float = 1.2  # P(app) = sigmoid(base - 0.06 (age - 35))
    segment_temperature: float = 0.25  # lower: segments follow observables more sharply
    # ---- personal data and defects
    email_missing_share: float = 0.08
    phone_missing_share: float = 0.15
    address_missing_share: float = 0.03
    invalid_email_share: float = 0.03
    invalid_phone_share: float = 0.03
    duplicate_email_share: float = 0.01  # share of customers who get another customer's e-mail
    duplicate_phone_share: float = 0.008
    missing_consent_all_share: float = 0.02
    consent_unknown_share: float = 0.04  # per consent column
    consent_yes_share: dict[str, float] = field(
        default_factory=lambda: {"email": 0.68, "sms": 0.38, "push": 0.55, "direct_mail": 0.55, "outbound_call": 0.22}
    )
    # ---- organic activity
    interactions_per_day: float = 0.15  # median customer's expected interactions per day
    engagement_sd: float = 0.8  # sd of the customer's log interaction rate
    engagement_ar: float = 0.99  # daily persistence of engagement swings
    engagement_shock_sd: float = 0.05
    orders_per_day: float = 0.018  # median customer's expected orders per day
    order_value: float = 45.0  # median order line amount
    activity_seasonality: float = 0.15  # amplitude of the yearly activity cycle (peak early December)
    moved_rate: float = 0.0004  # per customer per day
    contract_end_rate: float = 0.0012
    newsletter_signup_rate: float = 0.0008
    # ---- response truth (logit scale)
    base_logit: float = -4.05
    engagement_effect: float = 0.4
    affinity_effect: float = 0.5
    value_effect: float = 0.2
    offer_value_effect: float = -0.3  # per log(value / 60): dearer offers convert less
    stage_gap_effect: float = -0.2  # per journey stage between the customer and the offer
    noise_sd: float = 0.1  # per customer x category, unobservable
    segment_base: dict[str, float] = field(
        default_factory=lambda: {"persuadable": -0.1, "sure_thing": 0.5, "lost_cause": -0.4, "sleeping_dog": 0.1}
    )
    segment_gain: dict[str, float] = field(
        default_factory=lambda: {"persuadable": 1.2, "sure_thing": 0.25, "lost_cause": 0.15, "sleeping_dog": 0.0}
    )
    segment_annoyance: dict[str, float] = field(
        default_factory=lambda: {"persuadable": 0.1, "sure_thing": 0.1, "lost_cause": 0.1, "sleeping_dog": 1.0}
    )
    fatigue_effect: float = 0.35  # logit penalty per recent contact, times intrusiveness + 0.5
    fatigue_half_life_days: float = 10.0
    birthday_boost: float = 0.5
    moved_boost: float = 0.8
    contract_end_boost: float = 0.9
    newsletter_boost: float = 0.5
    complaint_rate: float = 0.004  # per contact, average customer, intrusiveness 1
    unsubscribe_rate: float = 0.004
    conversion_revenue_sd: float = 0.3
    # ---- historical campaigns
    campaign_every_days: int = 7
    campaign_share: float = 0.25  # share of active customers in each weekly campaign
    control_share: float = 0.2
    # ---- the randomised contact-frequency test (world/frequency.py)
    frequency_share: float = 0.12  # share of active customers enrolled when the test starts
    frequency_cells: tuple[int, ...] = (1, 2, 3)  # contacts a week of each cell, equally likely
    frequency_start_day: int = 28
    frequency_weeks: int = 4
    frequency_holdout_share: float = 0.2  # each scheduled decision of a cell held out with this probability
    channel_effects: dict[str, ChannelEffect] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_EFFECTS))
    seasonality: dict[str, tuple[float, int]] = field(default_factory=lambda: dict(DEFAULT_SEASONALITY))

    def channel_effect(self, channel: str) -> ChannelEffect:
        """Effect profile of ``channel`` (a neutral default for unknown channels)."""
        return self.channel_effects.get(channel, UNKNOWN_CHANNEL_EFFECT)

    def to_json(self) -> str:
        """JSON of every parameter (the ``params`` row of ``ground_truth.seeded_defects``)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldParams:
        """Inverse of :meth:`to_json` (after ``json.loads``); unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "channel_effects" in kwargs:
            kwargs["channel_effects"] = {k: ChannelEffect(**v) for k, v in kwargs["channel_effects"].items()}
        if "frequency_cells" in kwargs:
            kwargs["frequency_cells"] = tuple(int(k) for k in kwargs["frequency_cells"])
        if "seasonality" in kwargs:
            kwargs["seasonality"] = {k: (float(a), int(p)) for k, (a, p) in kwargs["seasonality"].items()}
        return cls(**kwargs)
