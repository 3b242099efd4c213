"""The data contract: every warehouse table, declared once.

Each :class:`Table` renders its DuckDB DDL and drives import validation, the
data-quality report and ``docs/data-model.md``. Only keys and timestamps are
required; any other column may be absent or null, which means *unknown* (the
``unknown`` text of each column says what downstream does with it).

Customer ids are integers (``BIGINT``): map external ids to integers on export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Personal data: never a model feature, never written to MLflow, removed by `forget`.
PERSONAL_COLUMNS: frozenset[str] = frozenset({"first_name", "email", "phone", "street_address", "postcode"})


@dataclass(frozen=True)
class Column:
    """One column of a table."""

    name: str
    type: str  # DuckDB type
    doc: str
    required: bool = False  # must be present in an import file and non-null
    unknown: str = "unknown"  # what a null means downstream
    allowed: tuple[str, ...] | None = None  # closed vocabulary, if any
    min_value: float | None = None
    not_future: bool = False  # dates/timestamps may not lie after the import time
    pattern: str | None = None  # regular expression every non-null value must fully match
    pattern_hint: str = ""  # the pattern in words, for error messages and the docs
    # Values must be ids of this kind in the config; for "family", the part before the first dot.
    vocabulary: Literal["channel", "family"] | None = None
    default: str | None = None  # SQL literal stored when the value is absent or null
    declared_personal: bool = False  # a declared attribute with `personal: true` (features.yaml)

    @property
    def personal(self) -> bool:
        """Whether the column holds personal data (see :data:`PERSONAL_COLUMNS`, or declared so)."""
        return self.declared_personal or self.name in PERSONAL_COLUMNS


@dataclass(frozen=True)
class ForeignKey:
    """``column`` must name an existing ``ref_table.ref_column`` (checked on import, not by DuckDB)."""

    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    """A warehouse table: columns, key, foreign key to customers, docs."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    customer_fk: bool = False  # customer_id must exist in customers
    importable: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    foreign_keys: tuple[ForeignKey, ...] = ()  # references other than customer_id -> customers

    @property
    def references(self) -> tuple[ForeignKey, ...]:
        """Every reference this table's rows must satisfy, the customer one first."""
        own = (ForeignKey("customer_id", "customers", "customer_id"),) if self.customer_fk else ()
        return own + self.foreign_keys

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def ddl(self, name: str | None = None, *, constraints: bool = True) -> str:
        """``CREATE TABLE IF NOT EXISTS`` statement (optionally under another name, e.g. staging)."""
        cols = [f"{c.name} {c.type}{' NOT NULL' if (constraints and c.required) else ''}" for c in self.columns]
        if constraints and self.key:
            cols.append(f"PRIMARY KEY ({', '.join(self.key)})")
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} (\n  " + ",\n  ".join(cols) + "\n)"


CONSENT_CHANNELS: tuple[str, ...] = ("email", "sms", "push", "direct_mail", "outbound_call")
VALIDITY_FIELDS: tuple[str, ...] = ("valid_email", "valid_phone", "valid_push", "valid_address")

CUSTOMERS = Table(
    name="customers",
    doc="One row per customer: profile, geography, consent and contact validity.",
    key=("customer_id",),
    columns=(
        Column("customer_id", "BIGINT", "Customer id (integer).", required=True),
        Column("birth_date", "DATE", "Date of birth.", unknown="age unknown: age features null, age rules false", not_future=True),
        Column("gender", "VARCHAR", "f, m or x.", allowed=("f", "m", "x"), unknown="neutral salutation"),
        Column("first_name", "VARCHAR", "Personalisation only; never a model feature.", unknown="salutation without name"),
        Column("postcode", "VARCHAR", "Postal code.", unknown="region unknown"),
        Column("region", "VARCHAR", "Region (province / state).", unknown="region 'unknown'"),
        Column("urbanity", "VARCHAR", "urban, suburban or rural.", allowed=("urban", "suburban", "rural"), unknown="category 'unknown'"),
        Column("distance_to_store_km", "DOUBLE", "Distance to the nearest store.", min_value=0, unknown="null; distance rules false"),
        Column("member_since", "DATE", "Start of the relationship.", not_future=True, unknown="first transaction or interaction"),
        *(
            Column(f"consent_{ch}", "BOOLEAN", f"Opt-in for {ch.replace('_', ' ')}.", unknown="no consent: never contacted on the channel")
            for ch in CONSENT_CHANNELS
        ),
        Column("valid_email", "BOOLEAN", "E-mail address is deliverable.", unknown="invalid: e-mail unreachable"),
        Column("valid_phone", "BOOLEAN", "Phone number is valid (SMS, calls).", unknown="invalid: SMS and calls unreachable"),
        Column("valid_push", "BOOLEAN", "App installed with a push token.", unknown="invalid: push unreachable"),
        Column("valid_address", "BOOLEAN", "Postal address is deliverable.", unknown="invalid: direct mail unreachable"),
        Column(
            "preferred_channel", "VARCHAR", "Channel the customer says they prefer (a channel id of the config).",
            unknown="no preference", vocabulary="channel",
        ),
        Column("email", "VARCHAR", "Personal: validity check and personalisation only.", unknown="none"),
        Column("phone", "VARCHAR", "Personal: validity check only.", unknown="none"),
        Column("street_address", "VARCHAR", "Personal: validity check only.", unknown="none"),
    ),
)

INTERACTIONS = Table(
    name="interactions",
    doc=(
        "Behavioural events. `type` is an open vocabulary written `family.action[.detail]` "
        "(e.g. `web.view.category.shoes`, `email.click`, `service.complaint`); the family "
        "(text before the first dot) groups types for the engagement features."
    ),
    customer_fk=True,
    columns=(
        Column("customer_id", "BIGINT", "Customer id.", required=True),
        Column("ts", "TIMESTAMP", "When it happened.", required=True, not_future=True),
        Column(
            "type", "VARCHAR", "Interaction type, `family.action[.detail]`.", required=True,
            vocabulary="family",
            pattern=r"[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+",
            pattern_hint="lower-case `family.action[.detail]` with dot-separated parts, e.g. web.view.category.shoes",
        ),
        Column("channel", "VARCHAR", "Channel it came through.", unknown="none"),
        Column("offer_id", "VARCHAR", "Offer it relates to (opens, clicks).", unknown="not offer-related"),
        Column("value", "DOUBLE", "Optional numeric payload (dwell seconds, rating, ...).", unknown="none"),
    ),
)

TRANSACTIONS = Table(
    name="transactions",
    doc="Order lines: one row per order and category.",
    key=("order_id", "category"),
    customer_fk=True,
    columns=(
        Column("customer_id", "BIGINT", "Customer id.", required=True),
        Column("ts", "TIMESTAMP", "Order time.", required=True, not_future=True),
        Column("order_id", "VARCHAR", "Order id.", required=True),
        Column("category", "VARCHAR", "Product category.", unknown="stored as 'unknown'", default="'unknown'"),
        Column("amount", "DOUBLE", "Revenue.", min_value=0, unknown="0 in monetary features"),
        Column("margin", "DOUBLE", "Margin.", unknown="0 in margin features"),
    ),
)

LIFE_EVENTS = Table(
    name="life_events",
    doc="Events in a customer's life: `moved`, `contract_end`, `newsletter_signup` (birthdays come from birth_date).",
    customer_fk=True,
    columns=(
        Column("customer_id", "BIGINT", "Customer id.", required=True),
        Column("ts", "TIMESTAMP", "When the event became known.", required=True, not_future=True),
        Column(
            "event_type", "VARCHAR", "moved, contract_end or newsletter_signup.", required=True,
            allowed=("moved", "contract_end", "newsletter_signup"),
        ),
        Column("event_date", "DATE", "Date the event refers to (a contract's end date).", unknown="same as ts"),
    ),
)

DECISIONS = Table(
    name="decisions",
    doc=(
        "Exposure log: every decision, contacted or not. Control-arm rows record the offer that "
        "*would* have been sent (contacted = false) so responses can be compared. A null offer_id "
        "is 'no action'."
    ),
    key=("decision_id",),
    columns=(
        Column("decision_id", "VARCHAR", "Unique decision id.", required=True),
        Column("customer_id", "BIGINT", "Customer id (cold-start customers may be unknown).", required=True),
        Column("ts", "TIMESTAMP", "Decision time.", required=True),
        Column("offer_id", "VARCHAR", "Chosen offer; null = no action."),
        Column("channel", "VARCHAR", "Chosen channel (a channel id of the config); null = no action.", vocabulary="channel"),
        Column("arm", "VARCHAR", "Experiment arm (champion, challenger, control, random, rules, ...)."),
        Column("experiment", "VARCHAR", "Experiment or campaign name."),
        Column("propensity", "DOUBLE", "Probability the policy chose this action."),
        Column("model_version", "VARCHAR", "Model version that scored it."),
        Column("score", "DOUBLE", "Expected value the policy computed."),
        Column("contacted", "BOOLEAN", "Whether the customer was actually contacted."),
    ),
)

RESPONSES = Table(
    name="responses",
    doc="Outcomes of decisions (open, click, visit, conversion, complaint, unsubscribe). One row per decision and outcome.",
    key=("decision_id", "outcome"),
    foreign_keys=(ForeignKey("decision_id", "decisions", "decision_id"),),
    columns=(
        Column("decision_id", "VARCHAR", "Decision it answers.", required=True),
        Column("ts", "TIMESTAMP", "When the outcome happened.", required=True),
        Column(
            "outcome", "VARCHAR", "open, click, visit, conversion, complaint or unsubscribe.", required=True,
            allowed=("open", "click", "visit", "conversion", "complaint", "unsubscribe"),
        ),
        Column("revenue", "DOUBLE", "Revenue of a conversion.", unknown="0"),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (CUSTOMERS, INTERACTIONS, TRANSACTIONS, LIFE_EVENTS, DECISIONS, RESPONSES)}
IMPORTABLE: tuple[str, ...] = tuple(n for n, t in TABLES.items() if t.importable)
