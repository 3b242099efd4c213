"""The true response model: P(conversion) with and without contact, and its revenue.

For customer *c*, offer *o* (category *k*) and channel *h* on day *t*::

    b   = base + engagement·z_eng + affinity·log(n_k·aff_ck) + value·z_val
          + offer_value·log(value_o / 60) + stage_gap·|stage_c − stage_o|
          + season_k(t) + event boosts + segment_base[seg_c] + noise_ck
    tau = segment_gain[seg_c]·gain_c·channel_gain_h(age, urbanity)·fit_ck + event boosts
          − segment_annoyance[seg_c]·intrusiveness_h·(1 + 0.3·grumpiness_c)
          − fatigue·fatigue_c(t)·(intrusiveness_h + 0.5)
    p_control = σ(b),   p_contact = σ(b + tau),   revenue = value_o · value_mult_c

One function computes it for aligned rows (:func:`row_truth`); the cross product
(:func:`true_probabilities`), the historical campaigns and :meth:`World.respond` all
call it, so there is one definition of the truth.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.world.params import SEGMENTS, WorldParams
from nextbest.world.population import Population

#: Life events and the categories they raise demand for.
EVENT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "birthday": ("beauty", "fashion_women", "fashion_men"),
    "moved": ("home", "garden"),
    "contract_end": ("electronics",),
}
MOVED_EFFECT_DAYS = 60
CONTRACT_WINDOW = (-14, 7)  # days around the contract's end date when upgrades sell
NEWSLETTER_EFFECT_DAYS = 30
BIRTHDAY_HORIZON_DAYS = 7


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Catalogue:
    """The configuration's offers and channels as arrays the truth indexes.

    Built once per world from the :class:`~nextbest.config.NextbestConfig` (the source
    of truth for offers, categories, values and channels).
    """

    offer_ids: tuple[str, ...]
    channel_ids: tuple[str, ...]
    categories: tuple[str, ...]
    offer_category: np.ndarray  # index into categories
    offer_stage: np.ndarray  # index into JOURNEY_STAGES
    offer_value: np.ndarray
    offer_margin_rate: np.ndarray
    offer_from: np.ndarray  # day offsets, inclusive; large negative/positive when open
    offer_to: np.ndarray
    pair_offer: np.ndarray  # every allowed (offer, channel) pair, in catalogue order
    pair_channel: np.ndarray
    channel_base: np.ndarray
    channel_age_slope: np.ndarray
    channel_urbanity: np.ndarray  # (n_channels, 3): shift for urban, suburban, rural
    channel_intrusiveness: np.ndarray
    channel_needs_app: np.ndarray
    channel_consent: tuple[str | None, ...]
    channel_validity: tuple[str | None, ...]
    event_mask: dict[str, np.ndarray]  # event -> bool per offer

    @classmethod
    def build(cls, config: NextbestConfig, categories: tuple[str, ...], params: WorldParams, start: dt.date) -> Catalogue:
        offers = config.offers.offers
        channels = config.channels.channels
        cat_index = {c: i for i, c in enumerate(categories)}
        ch_index = {c.id: i for i, c in enumerate(channels)}
        effects = [params.channel_effect(c.id) for c in channels]
        pairs = [(i, ch_index[h]) for i, o in enumerate(offers) for h in o.channels]
        far = 10**6

        def offset(d: dt.date | None, default: int) -> int:
            return default if d is None else (d - start).days

        offer_cat_names = [o.category for o in offers]
        return cls(
            offer_ids=tuple(o.id for o in offers),
            channel_ids=tuple(c.id for c in channels),
            categories=categories,
            offer_category=np.array([cat_index[o.category] for o in offers]),
            offer_stage=np.array([JOURNEY_STAGES.index(o.stage) for o in offers]),
            offer_value=np.array([o.value for o in offers], dtype=float),
            offer_margin_rate=np.array([o.margin / o.value if o.value else 0.0 for o in offers]),
            offer_from=np.array([offset(o.valid_from, -far) for o in offers]),
            offer_to=np.array([offset(o.valid_to, far) for o in offers]),
            pair_offer=np.array([p[0] for p in pairs], dtype=np.int32),
            pair_channel=np.array([p[1] for p in pairs], dtype=np.int32),
            channel_base=np.array([e.base for e in effects]),
            channel_age_slope=np.array([e.age_slope for e in effects]),
            channel_urbanity=np.array([[e.urban, 0.0, e.rural] for e in effects]),
            channel_intrusiveness=np.array([e.intrusiveness for e in effects]),
            channel_needs_app=np.array([e.needs_app for e in effects]),
            channel_consent=tuple(c.consent_field for c in channels),
            channel_validity=tuple(c.validity_field for c in channels),
            event_mask={
                **{ev: np.array([c in cats for c in offer_cat_names]) for ev, cats in EVENT_CATEGORIES.items()},
                "newsletter": np.array([o.stage == "awareness" for o in offers]),
            },
        )

    def offer_index(self, offer_ids: pd.Series | np.ndarray) -> np.ndarray:
        """Indices of offer ids (-1 for unknown)."""
        return pd.Categorical(offer_ids, categories=self.offer_ids).codes.astype(np.int64)

    def channel_index(self, channel_ids: pd.Series | np.ndarray) -> np.ndarray:
        """Indices of channel ids (-1 for unknown)."""
        return pd.Categorical(channel_ids, categories=self.channel_ids).codes.astype(np.int64)

    def reachable(self, pop: Population, pos: np.ndarray) -> np.ndarray:
        """``(len(pos), n_channels)``: consent given and contact valid (non-personal: always)."""
        out = np.ones((len(pos), len(self.channel_ids)), dtype=bool)
        for h, (consent, validity) in enumerate(zip(self.channel_consent, self.channel_validity)):
            if consent is not None:
                out[:, h] &= pop.consent[consent][pos] == 1
            if validity is not None:
                out[:, h] &= pop.valid[validity][pos]
        return out


def day_of_year(start: dt.date, day: int | np.ndarray) -> np.ndarray:
    d = np.datetime64(start, "D") + np.asarray(day)
    return (d - d.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1


def category_season(params: WorldParams, categories: tuple[str, ...], doy: np.ndarray | int) -> np.ndarray:
    """Seasonal demand shift (logit units) per category, shape ``(..., n_categories)``."""
    amp = np.array([params.seasonality.get(c, (0.0, 1))[0] for c in categories])
    peak = np.array([params.seasonality.get(c, (0.0, 1))[1] for c in categories])
    return amp * np.cos(2 * np.pi * (np.asarray(doy)[..., None] - peak) / 365.25)


def engagement_z(pop: Population, pos: np.ndarray, params: WorldParams) -> np.ndarray:
    """Current engagement, standardised (0 = the median customer's long-run level)."""
    return (pop.eng_mu[pos] + pop.eng_x[pos] - np.log(params.interactions_per_day)) / params.engagement_sd


def customer_stage(pop: Population, pos: np.ndarray, params: WorldParams, config: NextbestConfig) -> np.ndarray:
    """Journey stage index from the expected engagement score.

    The expected score is the daily interaction rate times the score's decay horizon
    (``half_life / ln 2``), the quantity the engagement features estimate; the stage is
    the last of ``features.stage_thresholds`` it reaches.
    """
    horizon = config.features.engagement_half_life_days / np.log(2)
    score = np.exp(pop.eng_mu[pos] + pop.eng_x[pos]) * horizon
    thresholds = np.array([config.features.stage_thresholds.get(s, 0.0) for s in JOURNEY_STAGES])
    return np.maximum((score[:, None] >= thresholds[None, :]).sum(axis=1) - 1, 0)


def row_truth(
    pop: Population,
    cat: Catalogue,
    params: WorldParams,
    config: NextbestConfig,
    start: dt.date,
    pos: np.ndarray,
    offer: np.ndarray,
    channel: np.ndarray,
    day: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True ``(p_control, p_contact, revenue)`` for aligned (customer position, offer, channel) rows.

    ``p_control`` is P(conversion on the offer within the response window | not contacted),
    ``p_contact`` the same when contacted through ``channel`` on ``day``; ``revenue`` is
    the expected revenue of one conversion. State (engagement, fatigue, events) is the
    population's current state.
    """
    seg = pop.segment[pos]
    k = cat.offer_category[offer]
    z_eng = engagement_z(pop, pos, params)
    z_val = np.log(pop.value_mult[pos]) / 0.45
    n_cat = len(cat.categories)
    log_aff = np.clip(np.log(pop.affinity[pos, k].astype(np.float64) * n_cat), -2.5, 1.5)
    doy = int(day_of_year(start, day))
    season = category_season(params, cat.categories, doy)[k]
    stage_gap = np.abs(customer_stage(pop, pos, params, config) - cat.offer_stage[offer])

    # Life events the customer is in the middle of (all visible in the raw tables).
    birthday = ((pop.birth_doy[pos].astype(np.int64) - doy) % 365) < BIRTHDAY_HORIZON_DAYS
    moved = (day - pop.moved_day[pos]) < MOVED_EFFECT_DAYS
    to_end = pop.contract_end_day[pos] - day
    contract = (to_end >= CONTRACT_WINDOW[0]) & (to_end <= CONTRACT_WINDOW[1])
    newsletter = (day - pop.newsletter_day[pos]) < NEWSLETTER_EFFECT_DAYS
    event = (
        params.birthday_boost * (birthday & cat.event_mask["birthday"][offer])
        + params.moved_boost * (moved & cat.event_mask["moved"][offer])
        + params.contract_end_boost * (contract & cat.event_mask["contract_end"][offer])
        + params.newsletter_boost * (newsletter & cat.event_mask["newsletter"][offer])
    )

    seg_base = np.array([params.segment_base[s] for s in SEGMENTS])
    seg_gain = np.array([params.segment_gain[s] for s in SEGMENTS])
    seg_annoy = np.array([params.segment_annoyance[s] for s in SEGMENTS])

    b = (
        params.base_logit
        + params.engagement_effect * z_eng
        + params.affinity_effect * log_aff
        + params.value_effect * z_val
        + params.offer_value_effect * np.log(np.maximum(cat.offer_value[offer], 1.0) / 60.0)
        + params.stage_gap_effect * stage_gap
        + season
        + event
        + seg_base[seg]
        + pop.noise[pos, k]
    )

    age_z = (pop.age_at(day)[pos] - 45.0) / 15.0
    gain = cat.channel_base[channel] + cat.channel_age_slope[channel] * age_z + cat.channel_urbanity[channel, pop.urbanity[pos]]
    gain = np.maximum(gain, 0.0)
    gain = np.where(cat.channel_needs_app[channel] & ~pop.app_user[pos], 0.0, gain)
    # A banner only works on customers who come to the site.
    is_web = cat.channel_intrusiveness[channel] == 0
    gain = np.where(is_web, gain * sigmoid(z_eng + 0.5), gain)
    fit = np.clip(1.0 + 0.25 * log_aff, 0.3, 1.5)
    intr = cat.channel_intrusiveness[channel]
    tau = (
        seg_gain[seg] * pop.gain_mult[pos] * gain * fit
        + 0.6 * event
        - seg_annoy[seg] * intr * (1.0 + 0.3 * pop.grumpiness[pos])
        - params.fatigue_effect * pop.fatigue[pos] * (intr + 0.5)
    )
    revenue = cat.offer_value[offer] * pop.value_mult[pos]
    return sigmoid(b), sigmoid(b + tau), revenue


def true_probabilities(
    pop: Population,
    cat: Catalogue,
    params: WorldParams,
    config: NextbestConfig,
    start: dt.date,
    customer_ids: np.ndarray,
    day: int,
) -> pd.DataFrame:
    """Truth for every customer × allowed (offer, channel) pair, one row each."""
    pos = pop.positions(customer_ids)
    n_pairs = len(cat.pair_offer)
    pos_r = np.repeat(pos, n_pairs)
    offer = np.tile(cat.pair_offer, len(pos))
    channel = np.tile(cat.pair_channel, len(pos))
    p_control, p_contact, revenue = row_truth(pop, cat, params, config, start, pos_r, offer, channel, day)
    return pd.DataFrame(
        {
            "customer_id": pop.customer_id[pos_r],
            "offer_id": pd.Categorical.from_codes(offer, categories=cat.offer_ids),
            "channel": pd.Categorical.from_codes(channel, categories=cat.channel_ids),
            "p_control": p_control,
            "p_contact": p_contact,
            "revenue": revenue,
        }
    )
