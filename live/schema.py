"""Tables of the live store, declared once with SQLAlchemy Core.

Every table has a ``seq`` key that only grows: writers are serialised (see
:mod:`nextbest.live.store`), so a row with a higher ``seq`` was always committed
after every row with a lower one. ``nextbest data sync`` and the services'
polling read "everything after ``seq`` N" and never miss a row that way.

SQLite needs ``AUTOINCREMENT`` for that: without it a deleted last row's
rowid would be handed out again (an erasure deletes rows).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

#: A ``seq`` column: BIGINT on PostgreSQL (an identity), INTEGER on SQLite (its rowid alias must be INTEGER).
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def _seq() -> Column:
    return Column("seq", SeqType, primary_key=True, autoincrement=True)


meta = Table(
    "live_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

#: The contact register: every decision the service (or a batch decision run) made.
decisions = Table(
    "decisions",
    metadata,
    _seq(),
    Column("decision_id", String(200), nullable=False, unique=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("offer_id", String(200)),
    Column("channel", String(200)),
    Column("arm", String(200)),
    Column("experiment", String(200)),
    Column("propensity", Float),
    Column("model_version", String(200)),
    Column("score", Float),
    Column("contacted", Boolean, nullable=False),
    # Which process wrote the row: a service worker ignores its own rows when it polls.
    Column("writer", String(64), nullable=False),
    Index("ix_decisions_customer_ts", "customer_id", "ts"),
    sqlite_autoincrement=True,
)

#: Outcomes of decisions (``POST /feedback``), one per decision and outcome.
outcomes = Table(
    "outcomes",
    metadata,
    _seq(),
    Column("decision_id", String(200), nullable=False),
    # Copied from the decision: the contact policy and erasure find a customer's outcomes without a join.
    Column("customer_id", BigInteger, nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("revenue", Float),
    Column("writer", String(64), nullable=False),
    UniqueConstraint("decision_id", "outcome", name="uq_outcomes_decision_outcome"),
    Index("ix_outcomes_customer", "customer_id"),
    sqlite_autoincrement=True,
)

#: Consent withdrawn through a response (an unsubscribe) or a complaint, per channel.
consent_changes = Table(
    "consent_changes",
    metadata,
    _seq(),
    Column("customer_id", BigInteger, nullable=False),
    Column("channel", String(200)),
    Column("ts", DateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("decision_id", String(200)),
    Index("ix_consent_customer", "customer_id"),
    sqlite_autoincrement=True,
)

#: Erased customers. The id is kept, and nothing else, so the erasure is honoured:
#: later requests for it are cold starts and their decisions are logged without it.
tombstones = Table(
    "tombstones",
    metadata,
    _seq(),
    Column("customer_id", BigInteger, nullable=False, unique=True),
    Column("ts", DateTime, nullable=False),
    sqlite_autoincrement=True,
)

#: The tables ``nextbest data sync`` copies into the warehouse, in the order it copies them.
SYNCED: tuple[Table, ...] = (decisions, outcomes, consent_changes)
