"""The feature registry: every feature declared once, for training and serving alike.

A :class:`FeatureDef` names a feature, the entity it describes, its type, its
window and the group that computes it. The pipeline (:mod:`.pipeline`) builds
exactly the features declared here, in this order; models read
:data:`MODEL_FEATURES`; the docs (``docs/features.md``) give each group's formula.

Some names depend on the configuration (count windows, interaction families,
channels, offer categories, event horizons): :func:`feature_defs` builds the
registry for a given :class:`~nextbest.config.NextbestConfig`. :data:`FEATURES`
and friends are the registry of the packaged default configuration.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal

from nextbest.warehouse.schema import PERSONAL_COLUMNS

from nextbest.config import JOURNEY_STAGES, NextbestConfig, load_config

Entity = Literal["customer", "customer_offer"]
Dtype = Literal["int", "float", "bool", "category"]
Group = Literal[
    "attributes", "profile", "geography", "engagement", "value", "basket", "reachability", "events", "personalisation",
    "affinity", "demand", "contacts", "offer_history",
]

#: Window of the RFM / value features; part of their contract names (``frequency_365d``).
VALUE_WINDOW_DAYS = 365
#: Windows of the recent-contact counts; part of their names (``contacts_7d``).
from nextbest.features.pressure import CONTACT_WINDOWS, PRESSURE_HORIZON_DAYS, pressure_features  # noqa: E402 - declared with the pressure definition
#: Habit signals: feature stem -> the interaction types it counts (``<stem>_total``, ``<stem>_share``).
HABIT_SIGNALS: dict[str, tuple[str, ...]] = {
    "offer_views": ("web.view.offer", "app.screen.offers"),
    "social_promotion": ("social.like", "social.share", "social.follow"),
    "service_contacts": ("service.call", "service.chat", "service.complaint"),
    "preference_visits": ("email.preferences",),
    "logins": ("web.login", "app.open"),
}
#: Windows of the offer-history counts; part of their contract names (``shown_30d``).
OFFER_SHOWN_WINDOWS: tuple[int, ...] = (30, 90)
#: Response outcomes that count as "responded" (complaints and unsubscribes do not).
POSITIVE_OUTCOMES: tuple[str, ...] = ("open", "click", "visit", "conversion")
#: Basket-share bucket for transactions whose category no offer promotes (or is unknown).
OTHER_CATEGORY = "other"
#: Prefix of the market-level category demand columns (``category_demand_<category>``).
DEMAND_PREFIX = "category_demand_"
#: ``basket_cluster`` of a customer with no purchase in the value window.
NO_BASKET = "none"

SQL_TYPES: dict[str, str] = {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "category": "VARCHAR"}


@dataclass(frozen=True)
class FeatureDef:
    """One feature.

    Attributes
    ----------
    name
        Column name, unique across the registry.
    entity
        ``customer`` (one value per customer) or ``customer_offer`` (per customer and offer).
    dtype
        ``int``, ``float``, ``bool`` or ``category`` (a string).
    description
        What the value means, with its unit.
    window
        Look-back in days before the as-of time; ``None`` = all history, or state at the as-of time.
    group
        Feature group that computes it (a section of ``docs/features.md``).
    default
        Value of a customer with no relevant history. ``None`` keeps a null
        (age unknown, never bought: recency is undefined); LightGBM treats it as missing.
    fitted
        Computed by a model fitted on a past snapshot (k-means, CLV regressor), not by SQL alone.
    """

    name: str
    entity: Entity
    dtype: Dtype
    description: str
    window: int | None
    group: Group
    default: bool | int | float | str | None = None
    fitted: bool = False

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.dtype]


def life_stage_labels(bands: tuple[int, ...]) -> tuple[str, ...]:
    """Labels of the life-stage bands: ``under_25``, ``25_34``, ..., ``65_plus``."""
    edges = sorted(bands)
    labels = [f"under_{edges[0]}"]
    labels += [f"{lo}_{hi - 1}" for lo, hi in zip(edges, edges[1:])]
    labels.append(f"{edges[-1]}_plus")
    return tuple(labels)


def basket_categories(config: NextbestConfig) -> tuple[str, ...]:
    """Categories of the basket shares: those the offers promote (sorted), then ``other``."""
    return (*sorted({o.category for o in config.offers.offers}), OTHER_CATEGORY)


def event_feature_names(config: NextbestConfig) -> dict[str, str]:
    """Names of the event features whose horizon is configurable (defaults match the policy's triggers)."""
    n = config.features.event_horizon_days
    return {"birthday": f"birthday_within_{n}d", "contract_end": f"contract_end_within_{n}d"}


def feature_defs(config: NextbestConfig) -> tuple[FeatureDef, ...]:
    """The registry for ``config``: every feature, in build order (declared attributes last)."""
    defs = [*_builtin_defs(config), *attribute_defs(config)]
    _check(defs)
    return tuple(defs)


#: Feature dtype of each attribute type; a date becomes days since it (see :func:`attribute_defs`).
ATTRIBUTE_DTYPES: dict[str, Dtype] = {"number": "float", "category": "category", "boolean": "bool", "date": "float"}


def attribute_defs(config: NextbestConfig) -> tuple[FeatureDef, ...]:
    """Features of the declared, non-personal ``features.attributes`` (personal ones are never features).

    A number, category or boolean attribute is read as is (an unknown category is
    ``'unknown'``, other unknowns stay null); a date attribute is the days from the
    date to the as-of time (negative while it lies ahead), like ``tenure_days``.
    """
    defs = []
    for a in config.features.attributes:
        if a.personal:
            continue
        what = {
            "number": "Declared number attribute; null if unknown.",
            "category": "Declared category attribute; 'unknown' if not recorded.",
            "boolean": "Declared boolean attribute; null if unknown.",
            "date": "Declared date attribute: days from the date to the as-of time (negative ahead); null if unknown.",
        }[a.type]
        defs.append(FeatureDef(a.name, "customer", ATTRIBUTE_DTYPES[a.type],
                               f"{a.description} ({what})" if a.description else what, None, "attributes",
                               "unknown" if a.type == "category" else None))
    return tuple(defs)


def builtin_feature_names(config: NextbestConfig) -> frozenset[str]:
    """Names of every feature nextbest computes itself (the ones a declared attribute may not take)."""
    return frozenset(d.name for d in _builtin_defs(config))


def _builtin_defs(config: NextbestConfig) -> list[FeatureDef]:
    fc = config.features
    windows = sorted(fc.windows_days)
    longest = windows[-1]
    defs: list[FeatureDef] = []

    def add(name: str, dtype: Dtype, group: Group, description: str, window: int | None = None,
            default: bool | int | float | str | None = None, *, entity: Entity = "customer",
            fitted: bool = False) -> None:
        defs.append(FeatureDef(name, entity, dtype, description, window, group, default, fitted))

    # ---------------------------------------------------------------- profile & geography
    add("age", "float", "profile", "Age in years at the as-of time (fractional); null if birth date unknown.")
    add("life_stage", "category", "profile",
        f"Age band ({', '.join(life_stage_labels(fc.age_bands))}) from features.age_bands; 'unknown' without age.",
        default="unknown")
    add("gender", "category", "profile", "f, m or x; 'unknown' if not recorded.", default="unknown")
    add("tenure_days", "float", "profile",
        "Days since member_since (else since the first order or interaction); 0 without any.", default=0.0)
    add("urbanity", "category", "geography", "urban, suburban or rural; 'unknown' if not recorded.", default="unknown")
    add("region", "category", "geography", "Region; 'unknown' if not recorded.", default="unknown")
    add("distance_to_store_km", "float", "geography", "Distance to the nearest store (km); null if unknown.")

    # ---------------------------------------------------------------- engagement
    for w in windows:
        add(f"interactions_{w}d", "int", "engagement", f"Interactions in the last {w} days.", w, 0)
        add(f"interaction_types_{w}d", "int", "engagement", f"Distinct interaction types in the last {w} days.", w, 0)
        for fam in fc.families:
            add(f"{fam}_interactions_{w}d", "int", "engagement", f"'{fam}.*' interactions in the last {w} days.", w, 0)
    add("days_since_last_interaction", "float", "engagement", "Days since the latest interaction; null if none.")
    add("email_open_rate", "float", "engagement",
        f"email.open interactions / e-mail contacts in the last {longest} days, capped at 1; null without contacts.",
        longest)
    add("email_click_rate", "float", "engagement",
        f"email.click interactions / e-mail contacts in the last {longest} days, capped at 1; null without contacts.",
        longest)
    add("engagement_score", "float", "engagement",
        f"Sum of family-weighted interactions, each decayed by 0.5^(age_days / {fc.engagement_half_life_days:g}).",
        default=0.0)
    add("engagement_trend", "float", "engagement",
        f"OLS slope per week of the engagement score sampled at the end of each of the last "
        f"{fc.engagement_trend_weeks} weeks.", 7 * fc.engagement_trend_weeks, 0.0)
    add("journey_stage", "category", "engagement",
        f"Highest stage whose features.stage_thresholds value the engagement score reaches ({', '.join(JOURNEY_STAGES)}).",
        default=lowest_stage(config))

    # ---------------------------------------------------------------- value
    v = VALUE_WINDOW_DAYS
    add("recency_days", "float", "value", "Days since the latest order; null if the customer never ordered.")
    add(f"frequency_{v}d", "int", "value", f"Orders in the last {v} days.", v, 0)
    add(f"monetary_{v}d", "float", "value", f"Revenue in the last {v} days.", v, 0.0)
    add(f"margin_{v}d", "float", "value", f"Margin in the last {v} days.", v, 0.0)
    add(f"avg_order_value_{v}d", "float", "value", f"monetary_{v}d / frequency_{v}d; null without orders.", v)
    add(f"category_breadth_{v}d", "int", "value", f"Distinct categories bought in the last {v} days.", v, 0)
    add("orders_total", "int", "value", "Orders before the as-of time.", None, 0)
    add("monetary_total", "float", "value", "Revenue before the as-of time.", None, 0.0)
    add("clv_12m", "float", "value",
        "Predicted margin over the next 12 months (LightGBM regressor; see docs/features.md).", 365, 0.0, fitted=True)

    # ---------------------------------------------------------------- basket
    for cat in basket_categories(config):
        add(f"spend_share_{cat}", "float", "basket", f"Share of {v}-day revenue spent on '{cat}'.", v, 0.0)
    add("basket_cluster", "category", "basket",
        f"k-means cluster of the spend shares, named after its dominant category; '{NO_BASKET}' without purchases.",
        v, NO_BASKET, fitted=True)

    # ---------------------------------------------------------------- reachability
    for ch in config.channels.channels:
        add(f"consent_{ch.id}", "bool", "reachability",
            f"Opted in to {ch.id} (unknown = no)." if ch.personal else f"{ch.id} needs no consent: always true.",
            default=False)
        add(f"reachable_{ch.id}", "bool", "reachability",
            f"Consent and a valid contact for {ch.id}." if ch.personal else f"{ch.id} is non-personal: always true.",
            default=False)
    add("preferred_channel", "category", "reachability", "Channel the customer says they prefer; 'none' if not set.",
        default="none")
    add("last_responsive_channel", "category", "reachability",
        f"Channel of the latest decision answered by {'/'.join(POSITIVE_OUTCOMES)}; 'none' if never.", default="none")

    # ---------------------------------------------------------------- events
    names = event_feature_names(config)
    add("days_to_birthday", "float", "events", "Days until the next birthday (0 = today); null without birth date.")
    add(names["birthday"], "bool", "events", f"Birthday within the next {fc.event_horizon_days} days.",
        fc.event_horizon_days, False)
    add("moved_recently", "bool", "events", f"A move dated in the last {fc.moved_recently_days} days.",
        fc.moved_recently_days, False)
    add(names["contract_end"], "bool", "events",
        f"A known contract end dated within the next {fc.event_horizon_days} days.", fc.event_horizon_days, False)
    add("newsletter_signup_recent", "bool", "events",
        f"Newsletter sign-up (life event or email.newsletter_signup) in the last {fc.newsletter_recent_days} days.",
        fc.newsletter_recent_days, False)
    add("order_count_crossed", "bool", "events",
        f"Order number {fc.order_count_trigger} happened in the last {fc.order_count_recent_days} days.",
        fc.order_count_recent_days, False)

    # ---------------------------------------------------------------- personalisation
    add("interest_category", "category", "personalisation",
        f"Category most viewed (web.view.category.<cat>) but not bought in the last {fc.interest_days} days; "
        "'none' if none.", fc.interest_days, "none")

    # ---------------------------------------------------------------- affinity
    add("category_events", "int", "affinity",
        "Category-tagged events before the as-of time: order lines plus category views, cart and wish-list adds.",
        None, 0)
    for cat in basket_categories(config):
        if cat != OTHER_CATEGORY:
            add(f"category_affinity_{cat}", "float", "affinity",
                f"Smoothed share of the category-tagged events in '{cat}' (1 / number of basket categories "
                "without any).", None)

    # ---------------------------------------------------------------- market demand
    for cat in basket_categories(config):
        if cat != OTHER_CATEGORY:
            add(f"{DEMAND_PREFIX}{cat}", "float", "demand",
                f"log(share of everyone's order lines in '{cat}' over the last "
                f"{fc.demand_recent_days} days / over the last {VALUE_WINDOW_DAYS} days): above 0 in season. "
                "The same for every customer on a date.", VALUE_WINDOW_DAYS, 0.0)

    # ---------------------------------------------------------------- contacts and reactions
    # Contact pressure: one definition for the snapshot, the training set and the live engine.
    for f in pressure_features(config):
        if f.window is None:
            add(f.name, "float", "contacts",
                f"Whole days since the latest contact (any offer, any channel), at most {PRESSURE_HORIZON_DAYS}: "
                f"{PRESSURE_HORIZON_DAYS} if none in that time.", PRESSURE_HORIZON_DAYS, f.default)
        else:
            on = f"on {f.channel}" if f.channel is not None else "any channel"
            add(f.name, "int", "contacts", f"Contacts (any offer, {on}) in the last {f.window} days.", f.window, 0)
    add("contacts_total", "int", "contacts", "Contacts before the as-of time.", None, 0)
    add("holdouts_total", "int", "contacts", "Decisions held out (control, not contacted) before the as-of time.",
        None, 0)
    add("contact_responses", "int", "contacts",
        f"Contacts answered ({'/'.join(POSITIVE_OUTCOMES)}) before the as-of time.", None, 0)
    add("contact_conversions", "int", "contacts", "Contacts that converted before the as-of time.", None, 0)
    add("holdout_conversions", "int", "contacts", "Held-out decisions that converted anyway.", None, 0)
    add("contact_complaints", "int", "contacts", "Contacts answered with a complaint or an unsubscribe.", None, 0)
    for stem, types in HABIT_SIGNALS.items():
        add(f"{stem}_total", "int", "contacts", f"{' / '.join(types)} interactions before the as-of time.", None, 0)
        add(f"{stem}_share", "float", "contacts",
            f"{stem}_total / all interactions before the as-of time; null without interactions.")
    add(f"complaints_{VALUE_WINDOW_DAYS}d", "int", "contacts",
        f"service.complaint interactions in the last {VALUE_WINDOW_DAYS} days.", VALUE_WINDOW_DAYS, 0)
    add("review_rating_avg", "float", "contacts", "Average social.review rating (1-5); null without reviews.")

    # ---------------------------------------------------------------- offer history
    for w in OFFER_SHOWN_WINDOWS:
        add(f"shown_{w}d", "int", "offer_history", f"Contacts with this offer in the last {w} days.", w, 0,
            entity="customer_offer")
    add("days_since_shown", "float", "offer_history", "Days since the latest contact with this offer; null if never.",
        entity="customer_offer")
    add("responded_before", "bool", "offer_history",
        f"A contact with this offer was answered ({'/'.join(POSITIVE_OUTCOMES)}).", None, False, entity="customer_offer")
    add("converted_before", "bool", "offer_history", "A contact with this offer converted.", None, False,
        entity="customer_offer")
    return defs


def lowest_stage(config: NextbestConfig) -> str:
    """The journey stage with the lowest threshold: every customer's floor."""
    thresholds = config.features.stage_thresholds
    return min(JOURNEY_STAGES, key=lambda s: (thresholds.get(s, float("inf")), JOURNEY_STAGES.index(s)))


def _check(defs: list[FeatureDef]) -> None:
    names = [d.name for d in defs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"feature registry: duplicate feature name(s) {dup}")
    personal = sorted(set(names) & PERSONAL_COLUMNS)
    if personal:
        raise ValueError(f"feature registry: personal column(s) {personal} may never be features")


def customer_features(defs: tuple[FeatureDef, ...]) -> tuple[FeatureDef, ...]:
    """The customer-entity features (the columns of a customer snapshot)."""
    return tuple(d for d in defs if d.entity == "customer")


def offer_history_features(defs: tuple[FeatureDef, ...]) -> tuple[FeatureDef, ...]:
    """The customer × offer features."""
    return tuple(d for d in defs if d.entity == "customer_offer")


def model_features(config: NextbestConfig) -> tuple[str, ...]:
    """Customer-feature names safe for models (personal columns are never registered at all)."""
    return tuple(d.name for d in customer_features(feature_defs(config)))


def categorical_features(config: NextbestConfig) -> tuple[str, ...]:
    """Names of the categorical (string) customer features."""
    return tuple(d.name for d in customer_features(feature_defs(config)) if d.dtype == "category")


def definition_hash(config: NextbestConfig) -> str:
    """Hash of the registry and the feature configuration: what the feature SQL computes."""
    payload = {
        "registry": [asdict(d) for d in feature_defs(config)],
        "features": config.features.model_dump(mode="json"),
        "channels": config.channels.model_dump(mode="json"),
        "categories": basket_categories(config),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _default_config() -> NextbestConfig:
    return load_config(None)


#: Registry of the packaged default configuration.
FEATURES: tuple[FeatureDef, ...] = feature_defs(_default_config())
#: Customer-feature names models may use (never first name, e-mail, phone, address, postcode).
MODEL_FEATURES: tuple[str, ...] = model_features(_default_config())
#: The categorical ones among them.
CATEGORICAL_FEATURES: tuple[str, ...] = categorical_features(_default_config())
#: Columns of :func:`nextbest.features.pipeline.build_offer_history` besides ``customer_id`` and ``offer_id``.
OFFER_HISTORY_FEATURES: tuple[str, ...] = tuple(d.name for d in offer_history_features(FEATURES))
