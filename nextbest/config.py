"""Validated configuration: the single source of truth for offers, channels and policy.

The workspace's ``config/`` folder holds one YAML file per concern. Each is parsed
once, at the edge, into frozen pydantic models; every other module receives a
:class:`NextbestConfig` and never reads YAML itself.

Files
-----
``channels.yaml``  channels, their cost, daily capacity and consent/validity fields.
``offers.yaml``    the offer catalogue.
``policy.yaml``    contact policy, journey stages, triggers, exploration, experiments,
                   arbitration and marketer segments.
``features.yaml``  feature windows, engagement weights and clustering settings.
``training.yaml``  labels, response window, splits, tuning and promotion gate.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nextbest.errors import ConfigError

JourneyStage = Literal["awareness", "nurturing", "experience", "conversion"]
JOURNEY_STAGES: tuple[str, ...] = ("awareness", "nurturing", "experience", "conversion")

CONFIG_FILES: tuple[str, ...] = ("channels", "offers", "policy", "features", "training")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- channels
class Channel(_Frozen):
    """A contact channel."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Channel id, e.g. 'email'.")
    cost_per_contact: float = Field(ge=0, description="Cost of one contact in the config currency.")
    daily_capacity: int | None = Field(
        default=None, ge=0, description="Max contacts per day across all customers; null = unlimited."
    )
    consent_field: str | None = Field(
        default=None,
        description="customers column holding consent for this channel; null = no consent needed "
        "(a non-personal channel such as an on-site banner).",
    )
    validity_field: str | None = Field(
        default=None, description="customers column telling whether the contact detail is valid."
    )
    personal: bool = Field(
        default=True, description="Whether the channel addresses a person (needs consent and a contact)."
    )

    @model_validator(mode="after")
    def _personal_needs_consent(self) -> Channel:
        if self.personal and self.consent_field is None:
            raise ValueError(f"channel {self.id!r} is personal but has no consent_field; set one")
        return self


class ChannelsConfig(_Frozen):
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    channels: tuple[Channel, ...]

    @field_validator("channels")
    @classmethod
    def _unique(cls, v: tuple[Channel, ...]) -> tuple[Channel, ...]:
        ids = [c.id for c in v]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate channel id(s) {dup}; give each channel a unique id")
        return v


# --------------------------------------------------------------------------- offers
class Offer(_Frozen):
    """An offer of the catalogue."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    category: str = Field(description="Product category the offer promotes.")
    stage: JourneyStage = Field(description="Journey stage the offer serves.")
    value: float = Field(ge=0, description="Expected revenue of a conversion.")
    margin: float = Field(ge=0, description="Expected margin of a conversion (arbitration uses it).")
    lever: float = Field(default=1.0, ge=0, description="Business lever: a multiplier marketers set.")
    eligibility: str | None = Field(default=None, description="Rule over features; null = everyone.")
    segment: str | None = Field(default=None, description="Only customers of this named segment.")
    channels: tuple[str, ...] = Field(min_length=1, description="Channels the offer may go out on.")
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    max_contacts: int | None = Field(default=None, ge=0, description="Cap on total exposures.")
    message: str = Field(default="", description="Message template; {salutation}, {category} are filled.")

    @model_validator(mode="after")
    def _dates(self) -> Offer:
        if self.valid_from and self.valid_to and self.valid_from > self.valid_to:
            raise ValueError(f"offer {self.id!r}: valid_from {self.valid_from} is after valid_to {self.valid_to}")
        return self

    def valid_at(self, day: dt.date) -> bool:
        """Whether the offer may be proposed on ``day``."""
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )


class OffersConfig(_Frozen):
    offers: tuple[Offer, ...] = Field(min_length=1)

    @field_validator("offers")
    @classmethod
    def _unique(cls, v: tuple[Offer, ...]) -> tuple[Offer, ...]:
        ids = [o.id for o in v]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate offer id(s) {dup}; give each offer a unique id")
        return v


# --------------------------------------------------------------------------- policy
class ContactPolicy(_Frozen):
    window_days: int = Field(default=7, ge=1, description="Rolling window for the caps.")
    max_contacts: int = Field(default=3, ge=0, description="Max contacts per customer per window.")
    max_contacts_per_channel: dict[str, int] = Field(default_factory=dict)
    offer_cooldown_days: int = Field(default=14, ge=0, description="No repeat of an offer within this.")
    complaint_suppression_days: int = Field(default=60, ge=0)
    negative_response_suppression_days: int = Field(default=30, ge=0)


class StagePolicy(_Frozen):
    mode: Literal["gate", "boost", "off"] = "gate"
    boost: float = Field(default=1.2, ge=1.0, description="EV multiplier for an offer of the customer's stage.")
    # Conversion channels are costly and intrusive: only customers at or above this stage get them.
    min_stage_for_channel: dict[str, JourneyStage] = Field(default_factory=dict)


class Trigger(_Frozen):
    id: str
    event: str = Field(description="Feature (boolean) that signals the event, e.g. 'birthday_within_7d'.")
    offers: tuple[str, ...] = Field(min_length=1)
    action: Literal["boost", "force"] = "boost"
    boost: float = Field(default=1.5, ge=1.0)
    condition: str | None = Field(default=None, description="Extra rule, e.g. 'clv_12m >= 50'.")
    refire_cooldown_days: int = Field(
        default=30,
        ge=0,
        description=(
            "After one of the trigger's offers was sent to a customer, the trigger does not fire for them again for "
            "this many days, however long the event lasts (0 = fire whenever the event is on)."
        ),
    )


class Exploration(_Frozen):
    method: Literal["epsilon_greedy", "softmax", "none"] = "epsilon_greedy"
    epsilon: float = Field(default=0.05, ge=0, le=1)
    temperature: float = Field(default=1.0, gt=0)
    top_n: int = Field(default=5, ge=1, description="Explore among this many top candidates.")
    contact_epsilon: float = Field(
        default=0.0, ge=0, le=0.5,
        description=(
            "Share of decisions that explore contact versus no action, whatever the contact pressure: a customer whose "
            "best eligible candidate does not beat arbitration.min_expected_value is sent it with this probability, and "
            "one whose candidates do is left alone with this probability; both logged with these propensities. "
            "Applies to exploring model arms; the contact policy's rules still decide what is eligible (0 = off)."
        ),
    )


class Arm(_Frozen):
    name: str
    share: float = Field(gt=0, le=1)
    policy: Literal["model", "control", "random", "rules"] = "model"
    model_alias: str | None = Field(default=None, description="Registry alias, e.g. 'champion'.")


class Experiment(_Frozen):
    name: str
    arms: tuple[Arm, ...] = Field(min_length=1)
    salt: str = Field(default="nextbest", description="Hash salt; change it to reshuffle customers.")

    @model_validator(mode="after")
    def _shares(self) -> Experiment:
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"experiment {self.name!r}: arm shares sum to {total:g}; make them sum to 1")
        return self


class UniversalControl(_Frozen):
    """A persistent hold-out: customers no arm of any experiment contacts, the untouched baseline."""

    share: float = Field(
        default=0.05, ge=0, lt=1,
        description="Share of customers (by a salted hash of their id) never contacted by any arm (0 = none).",
    )
    salt: str = Field(
        default="nextbest-universal-control", min_length=1,
        description="Hash salt of its own, so the group survives experiment changes; change it only to reshuffle.",
    )
    name: str = Field(
        default="universal_control", pattern=r"^[a-z][a-z0-9_]*$",
        description="Arm name its decisions are logged under (decided, with the action withheld).",
    )


class Arbitration(_Frozen):
    objective: Literal["response", "uplift"] = Field(
        default="uplift", description="Rank by P(response)×value or by incremental (uplift) value."
    )
    value_field: Literal["margin", "value"] = "margin"
    include_lever: bool = True
    include_cost: bool = True
    min_expected_value: float = Field(default=0.0, description="'No action' wins below this.")


class Segment(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    rule: str
    description: str = ""


class PolicyConfig(_Frozen):
    contact: ContactPolicy = ContactPolicy()
    stages: StagePolicy = StagePolicy()
    triggers: tuple[Trigger, ...] = ()
    exploration: Exploration = Exploration()
    experiment: Experiment = Experiment(
        name="default", arms=(Arm(name="champion", share=0.9, model_alias="champion"), Arm(name="control", share=0.1, policy="control"))
    )
    arbitration: Arbitration = Arbitration()
    segments: tuple[Segment, ...] = ()
    universal_control: UniversalControl = UniversalControl()

    @model_validator(mode="after")
    def _universal_control_name(self) -> PolicyConfig:
        if self.universal_control.share > 0 and self.universal_control.name in {a.name for a in self.experiment.arms}:
            raise ValueError(
                f"universal_control.name {self.universal_control.name!r} is also an arm of experiment "
                f"{self.experiment.name!r}; rename the arm or the universal control group"
            )
        return self


# --------------------------------------------------------------------------- features
AttributeType = Literal["number", "category", "boolean", "date"]
ATTRIBUTE_TYPES: tuple[str, ...] = ("number", "category", "boolean", "date")

#: Names an attribute may not take: columns of the training and candidate frames besides
#: the features (a clash would silently replace one with the other).
RESERVED_NAMES: frozenset[str] = frozenset({
    "customer_id", "decision_id", "ts", "as_of", "snapshot_as_of", "offer_id", "channel", "arm", "experiment",
    "propensity", "model_version", "score", "contacted", "label", "revenue", "true_p_contact", "true_p_control",
})


class Attribute(_Frozen):
    """A column of the business's own, declared for the ``customers`` table.

    A declared attribute is imported with the customers, appears in the feature
    snapshot under its own name and feeds the models, rules, segments and
    reports; a ``personal`` one is only stored (and erased by ``forget``).
    """

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", max_length=63,
        description="Column name in customers files and feature name, e.g. loyalty_tier.",
    )
    type: AttributeType = Field(description="number, category, boolean or date.")
    personal: bool = Field(
        default=False,
        description="Personal data (e.g. date of birth of a partner): never a model feature, rule input or "
        "report column, never logged to MLflow; erased by `nextbest data forget`.",
    )
    description: str = ""

    @field_validator("name")
    @classmethod
    def _not_keyword(cls, v: str) -> str:
        if v in _sql_reserved_words():
            raise ValueError(f"attribute name {v!r} is an SQL keyword; choose another name, e.g. {v}_value")
        return v


class FeaturesConfig(_Frozen):
    windows_days: tuple[int, ...] = (7, 30, 90)
    families: tuple[str, ...] = ("web", "app", "email", "store", "service", "social")
    engagement_half_life_days: float = Field(default=14.0, gt=0)
    engagement_weights: dict[str, float] = Field(
        default_factory=lambda: {"web": 1.0, "app": 1.0, "email": 0.5, "store": 3.0, "service": 0.5, "social": 0.5}
    )
    engagement_trend_weeks: int = Field(default=4, ge=2)
    # Thresholds on the engagement score: a customer at or above the threshold is in the stage.
    stage_thresholds: dict[JourneyStage, float] = Field(
        default_factory=lambda: {"awareness": 0.0, "nurturing": 2.0, "experience": 6.0, "conversion": 12.0}
    )
    age_bands: tuple[int, ...] = Field(default=(25, 35, 50, 65), description="Life-stage band edges (years).")
    basket_clusters: int = Field(default=6, ge=2)
    event_horizon_days: int = Field(default=7, ge=1, description="Birthday / contract end 'within N days'.")
    moved_recently_days: int = Field(default=30, ge=1)
    order_count_trigger: int = Field(default=3, ge=1, description="'Third order' trigger threshold.")
    stale_months: int = Field(default=12, ge=1, description="Data quality: no activity for N months = stale.")
    interest_days: int = Field(default=30, ge=1, description="Personalisation: viewed-not-bought window.")
    newsletter_recent_days: int = Field(default=14, ge=1, description="'Newsletter sign-up recent' window.")
    demand_recent_days: int = Field(
        default=14, ge=1, le=180, description="Category demand: the recent window compared with the last 365 days."
    )
    order_count_recent_days: int = Field(
        default=14, ge=1, description="'Order count crossed': the threshold order happened within N days."
    )
    clv_label_days: int = Field(
        default=90, ge=7, description="CLV regressor: value in this many days after the fit snapshot is the label."
    )
    clv_min_customers: int = Field(
        default=200, ge=10,
        description="Fewer buyers than this: clv_12m falls back to the last 365 days' value (run rate).",
    )
    clv_max_train_rows: int = Field(default=100_000, ge=100, description="Sample cap for fitting the CLV regressor.")
    margin_rate: float | None = Field(
        default=None, gt=0, le=1,
        description="Customer value without margins: when no transaction carries a margin, clv_12m is "
        "amount x margin_rate (share of revenue that is margin); null = amounts as they are.",
    )
    cluster_max_train_rows: int = Field(default=100_000, ge=100, description="Sample cap for fitting k-means.")
    seed: int = Field(default=0, description="Seed of the fitted feature models (k-means, CLV, sampling).")
    attributes: tuple[Attribute, ...] = Field(
        default=(), description="The business's own customers columns (loyalty tier, store of record, ...)."
    )

    @field_validator("attributes")
    @classmethod
    def _attributes_unique(cls, v: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
        from nextbest.warehouse.schema import CUSTOMERS

        names = [a.name for a in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate attribute name(s) {dup}; declare each attribute once")
        builtin = sorted(set(names) & set(CUSTOMERS.column_names))
        if builtin:
            raise ValueError(
                f"attribute(s) {builtin} are built-in customers columns (docs/data-model.md); "
                "remove the declaration (the column imports as is) or choose another name"
            )
        reserved = sorted(set(names) & RESERVED_NAMES)
        if reserved:
            raise ValueError(f"attribute name(s) {reserved} are reserved by nextbest; choose other names")
        return v

    def attribute(self, name: str) -> Attribute:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)


# --------------------------------------------------------------------------- training
class PromotionGate(_Frozen):
    metric: Literal["test_auc", "test_logloss", "test_qini"] = "test_auc"
    min_improvement: float = Field(default=0.002, ge=0)


class TrainingConfig(_Frozen):
    label: Literal["click", "visit", "conversion"] = "conversion"
    response_window_days: int = Field(default=14, ge=1)
    strategy: Literal["global", "per_offer_channel"] = "global"
    validation_share: float = Field(default=0.15, gt=0, lt=0.5)
    test_share: float = Field(default=0.15, gt=0, lt=0.5)
    calibration: Literal["isotonic", "sigmoid", "none"] = "sigmoid"
    n_estimators: int = Field(default=2000, ge=10)
    learning_rate: float = Field(default=0.02, gt=0)
    num_leaves: int = Field(default=7, ge=2)
    feature_fraction: float = Field(default=0.5, gt=0, le=1, description="LightGBM share of features per tree.")
    lambda_l2: float = Field(default=10.0, ge=0, description="LightGBM L2 penalty on leaf values.")
    seed: int = 0
    promotion: PromotionGate = PromotionGate()
    uplift_learner: Literal["s", "t", "x", "shift"] = Field(
        # The default by the closed loop's paired 5-seed benchmark (docs/synthetic-world.md).
        default="shift",
        description=(
            "s: one model with 'contacted' as a feature; t: one model per arm; x: X-learner on top of t; "
            "shift: a baseline model plus a contact-effect model in log-odds, fitted in turn."
        ),
    )
    ensemble_members: int = Field(
        default=1, ge=1, description="Average this many learners fitted on row subsamples (1 = a single learner)."
    )
    effect_num_leaves: int = Field(default=3, ge=2, description="shift learner: leaves per contact-effect tree.")
    effect_min_child_samples: int = Field(
        default=400, ge=1, description="shift learner: min_data_in_leaf of the contact-effect model."
    )
    effect_ignored_features: tuple[str, ...] = Field(
        default=("offer_id",),
        description=(
            "shift learner: columns the contact-effect model never splits on, e.g. [offer_id] when the effect of a "
            "contact should depend on the customer and channel (and the customer's taste for the offer's category) "
            "but not on the offer's identity."
        ),
    )
    ignored_features: tuple[str, ...] = Field(
        default=(),
        description=(
            "Model inputs no tree splits on (they stay in the model's encoding), e.g. [offer_category_demand] on a "
            "warehouse too small to estimate the market's demand above its noise."
        ),
    )
    pressure_features: tuple[str, ...] | None = Field(
        default=None,
        description=(
            "Contact pressure: inputs whose effect on the contact effect is monotone, never rising with pressure "
            "(LightGBM monotone_constraints, on the part of each learner that carries the contact effect). "
            "null = every pressure feature: contacts_7d, contacts_30d and contacts_7d_<channel> (more recent contacts "
            "never raise the contact effect) and days_since_contact (a longer rest never lowers it). They act "
            "through a contact only, so the model never extrapolates a fresh customer's uplift to one contacted "
            "yesterday; served from the live contact history at decision time. [] = unconstrained."
        ),
    )
    min_child_samples: int = Field(default=200, ge=1, description="LightGBM min_data_in_leaf.")
    early_stopping_rounds: int = Field(default=100, ge=1, description="Stop when validation log loss stalls.")
    experiments: tuple[str, ...] | None = Field(
        default=None, description="Train only on decisions of these experiments (e.g. [historical]); null = all."
    )
    n_jobs: int = Field(default=1, ge=0, description="LightGBM threads (0 = one per core); 1 suits a shared machine.")


# --------------------------------------------------------------------------- whole
class NextbestConfig(_Frozen):
    channels: ChannelsConfig
    offers: OffersConfig
    policy: PolicyConfig = PolicyConfig()
    features: FeaturesConfig = FeaturesConfig()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _cross_refs(self) -> NextbestConfig:
        channel_ids = {c.id for c in self.channels.channels}
        offer_ids = {o.id for o in self.offers.offers}
        segment_names = {s.name for s in self.policy.segments}
        for o in self.offers.offers:
            unknown = [c for c in o.channels if c not in channel_ids]
            if unknown:
                raise ValueError(f"offer {o.id!r} names unknown channel(s) {unknown}; known: {sorted(channel_ids)}")
            if o.segment is not None and o.segment not in segment_names:
                raise ValueError(f"offer {o.id!r} targets unknown segment {o.segment!r}; define it in policy.yaml")
        for t in self.policy.triggers:
            unknown = [x for x in t.offers if x not in offer_ids]
            if unknown:
                raise ValueError(f"trigger {t.id!r} names unknown offer(s) {unknown}")
        for ch in self.policy.contact.max_contacts_per_channel:
            if ch not in channel_ids:
                raise ValueError(f"policy.contact.max_contacts_per_channel names unknown channel {ch!r}")
        for ch in self.policy.stages.min_stage_for_channel:
            if ch not in channel_ids:
                raise ValueError(f"policy.stages.min_stage_for_channel names unknown channel {ch!r}")
        return self

    @model_validator(mode="after")
    def _attributes_not_features(self) -> NextbestConfig:
        # A declared attribute is a feature of its own name: it may not shadow a built-in one.
        from nextbest.features.registry import builtin_feature_names

        clash = sorted({a.name for a in self.features.attributes} & builtin_feature_names(self))
        if clash:
            raise ValueError(
                f"features.attributes: {clash} already name built-in features (`nextbest features list`); "
                "choose other names, e.g. crm_" + clash[0]
            )
        return self

    @model_validator(mode="after")
    def _rules_parse(self) -> NextbestConfig:
        # Eligibility, segment and trigger rules fail at load, with offer id and position.
        from nextbest.decisioning.ruleset import RuleError, RuleSet

        try:
            RuleSet.from_config(self)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _pressure_features(self) -> NextbestConfig:
        # Only a contact-pressure feature has a known direction for its monotone constraint.
        from nextbest.features.pressure import pressure_features

        chosen = self.training.pressure_features or ()
        known = [f.name for f in pressure_features(self)]
        bad = [f for f in chosen if f not in known]
        if bad:
            raise ValueError(
                f"training.pressure_features names {bad}, not contact-pressure features; choose from {known} "
                "(or null for all of them, [] for none)"
            )
        twice = sorted({f for f in chosen if chosen.count(f) > 1})
        if twice:
            raise ValueError(f"training.pressure_features lists {twice} more than once; list each feature once")
        return self

    # Convenience look-ups; the tuples above stay the source of truth.
    def channel(self, channel_id: str) -> Channel:
        for c in self.channels.channels:
            if c.id == channel_id:
                return c
        raise KeyError(channel_id)

    def offer(self, offer_id: str) -> Offer:
        for o in self.offers.offers:
            if o.id == offer_id:
                return o
        raise KeyError(offer_id)


DEFAULTS_DIR = Path(__file__).parent / "defaults"


@lru_cache(maxsize=1)
def _sql_reserved_words() -> frozenset[str]:
    """DuckDB's reserved keywords: a column of that name would need quoting in every query."""
    import duckdb

    rows = duckdb.sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()
    return frozenset(r[0] for r in rows)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        # libyaml's parser when PyYAML has it: a catalogue of a thousand offers parses in ~0.1 s instead of ~1.5 s.
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(config_dir: Path | None = None) -> NextbestConfig:
    """Load and validate the configuration.

    Parameters
    ----------
    config_dir
        Folder with the YAML files. Files that are absent fall back to the
        packaged defaults (``nextbest/defaults``); ``None`` uses the defaults only.

    Raises
    ------
    ConfigError
        With the file, the field path and the fix, when anything is invalid.
    """
    raw: dict[str, Any] = {}
    for name in CONFIG_FILES:
        path = (config_dir / f"{name}.yaml") if config_dir else None
        if path is None or not path.exists():
            path = DEFAULTS_DIR / f"{name}.yaml"
        raw[name] = _read_yaml(path)
    try:
        return NextbestConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            file = f"{err['loc'][0]}.yaml" if err["loc"] else "config"
            lines.append(f"{file}: {loc}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from exc
