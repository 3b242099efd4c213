"""Data-quality report: what a marketer checks before trusting a campaign.

Every check is one set-based SQL query. Customer-level checks
(:data:`CUSTOMER_CHECKS`) yield the offending customer ids
(:func:`flagged_customers`); table-level checks count rows (unknown customers
in fact tables, duplicate keys). :func:`quality_report` aggregates both with
the completeness of every column, the consent coverage per configured
channel and the unit customer value is measured in (margin, amount x
``margin_rate`` or amount, :mod:`.value_basis`, with a warning when margins are
missing) into a :class:`QualityReport` (rendered as a table or JSON by the CLI).

Contact formats are defined once in :mod:`nextbest.warehouse.contact`. Duplicate
contacts compare well-formed values only: a malformed value is reported as such,
and two customers sharing the same typo are not thereby the same person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import duckdb
import pandas as pd
from nextbest.warehouse.contact import EMAIL_PATTERN, PHONE_PATTERN, email_key_sql, phone_key_sql
from nextbest.warehouse.schema import CUSTOMERS, TABLES
from nextbest.warehouse.value_basis import ValueBasis, value_basis

from nextbest.config import Channel, NextbestConfig
from nextbest.errors import ConfigError

MAX_EXAMPLES = 5

#: Customer-level checks: title and fix. Names match the kinds of ``ground_truth.seeded_defects``.
CUSTOMER_CHECKS: dict[str, tuple[str, str]] = {
    "invalid_email": (
        "E-mail malformed",
        "correct the address in the source system (format: name@domain.tld)",
    ),
    "invalid_phone": (
        "Phone malformed",
        "correct the number (8-15 digits, optional leading +; spaces and dashes are fine)",
    ),
    "duplicate_email": (
        "E-mail shared by several ids",
        "merge the duplicate customers, or correct the address of the wrong one",
    ),
    "duplicate_phone": (
        "Phone shared by several ids",
        "merge the duplicate customers, or correct the number of the wrong one",
    ),
    "missing_consent_all": (
        "Consent unknown on every personal channel",
        "record the customer's opt-in or opt-out per channel (unknown counts as no consent)",
    ),
    "unreachable": (
        "No reachable personal channel",
        "collect a valid contact detail for a consented channel",
    ),
    "stale": (
        "Stale: no activity in stale_months",
        "reactivate, or exclude from campaigns and consider deleting the record",
    ),
}


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    title: str
    unit: Literal["customers", "rows"]
    count: int
    base: int  # customers or rows checked
    fix: str
    examples: tuple[int | str, ...] = ()  # customer ids or row keys, never personal data

    @property
    def share(self) -> float:
        return self.count / self.base if self.base else 0.0

    @property
    def status(self) -> Literal["ok", "warn"]:
        return "ok" if self.count == 0 else "warn"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "unit": self.unit,
            "count": self.count,
            "base": self.base,
            "share": round(self.share, 6),
            "status": self.status,
            "examples": list(self.examples),
            "fix": self.fix,
        }


@dataclass(frozen=True)
class ChannelCoverage:
    """Consent and reachability of one configured channel, as shares of all customers."""

    channel: str
    personal: bool
    consent: float  # consent = true
    consent_unknown: float  # consent null
    reachable: float  # consent and a valid contact detail

    def as_dict(self) -> dict[str, object]:
        return {
            "personal": self.personal,
            "consent": round(self.consent, 6),
            "consent_unknown": round(self.consent_unknown, 6),
            "reachable": round(self.reachable, 6),
        }


@dataclass(frozen=True)
class QualityReport:
    """Everything ``nextbest data quality`` shows."""

    as_of: dt.datetime
    customers: int
    checks: tuple[Check, ...]
    consent: tuple[ChannelCoverage, ...]
    completeness: dict[str, dict[str, float]] = field(default_factory=dict)  # table -> column -> null share
    value_basis: ValueBasis | None = None  # what clv_12m is measured in

    def check(self, name: str) -> Check:
        """The check called ``name``."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat(sep=" "),
            "customers": self.customers,
            "checks": [c.as_dict() for c in self.checks],
            "consent": {c.channel: c.as_dict() for c in self.consent},
            "completeness": {t: {c: round(v, 6) for c, v in cols.items()} for t, cols in self.completeness.items()},
            "value_basis": None if self.value_basis is None else self.value_basis.as_dict(),
        }


def quality_report(
    con: duckdb.DuckDBPyConnection, config: NextbestConfig, *, as_of: dt.datetime | None = None
) -> QualityReport:
    """Run every check.

    Parameters
    ----------
    con
        Warehouse connection (read-only is enough).
    config
        Channels (consent and validity fields) and ``features.stale_months``.
    as_of
        Reference time for staleness; defaults to the latest interaction or
        transaction, so an old export is judged on its own terms.
    """
    as_of = as_of or latest_activity(con)
    n_customers = _scalar(con, "SELECT count(*) FROM customers")
    flagged = flagged_customers(con, config, as_of=as_of)
    checks = [
        Check(
            name,
            title,
            "customers",
            int((flagged["kind"] == name).sum()),
            n_customers,
            fix,
            tuple(int(i) for i in flagged.loc[flagged["kind"] == name, "customer_id"].head(MAX_EXAMPLES)),
        )
        for name, (title, fix) in CUSTOMER_CHECKS.items()
    ]
    checks += table_checks(con)
    return QualityReport(
        as_of=as_of,
        customers=n_customers,
        checks=tuple(checks),
        consent=channel_coverage(con, config),
        completeness=completeness(con),
        value_basis=value_basis(con, config),
    )


def latest_activity(con: duckdb.DuckDBPyConnection) -> dt.datetime:
    """Latest interaction or transaction time; now when there is none."""
    latest = con.execute(
        "SELECT greatest((SELECT max(ts) FROM interactions), (SELECT max(ts) FROM transactions))"
    ).fetchone()[0]
    return latest or dt.datetime.now().replace(microsecond=0)


def flagged_customers(
    con: duckdb.DuckDBPyConnection, config: NextbestConfig, *, as_of: dt.datetime | None = None
) -> pd.DataFrame:
    """Customers failing each customer-level check.

    Returns
    -------
    pandas.DataFrame
        Columns ``kind`` (a key of :data:`CUSTOMER_CHECKS`) and ``customer_id``,
        sorted; a customer appears once per check it fails.
    """
    as_of = as_of or latest_activity(con)
    personal = [c for c in config.channels.channels if c.personal]
    _check_fields(personal)
    recorded = " OR ".join(f"{c.consent_field} IS NOT NULL" for c in personal) or "false"
    reachable = " OR ".join(_reachable_sql(c) for c in personal) or "false"
    email, phone = email_key_sql("email"), phone_key_sql("phone")
    sql = f"""
        SELECT 'invalid_email' AS kind, customer_id FROM customers
        WHERE email IS NOT NULL AND NOT regexp_full_match(trim(email), '{EMAIL_PATTERN}')
        UNION ALL
        SELECT 'invalid_phone', customer_id FROM customers
        WHERE phone IS NOT NULL AND NOT regexp_full_match({phone}, '{PHONE_PATTERN}')
        UNION ALL
        SELECT 'duplicate_email', customer_id FROM (
            SELECT customer_id, count(*) OVER (PARTITION BY {email}) AS n FROM customers
            WHERE regexp_full_match(trim(email), '{EMAIL_PATTERN}')) WHERE n > 1
        UNION ALL
        SELECT 'duplicate_phone', customer_id FROM (
            SELECT customer_id, count(*) OVER (PARTITION BY {phone}) AS n FROM customers
            WHERE regexp_full_match({phone}, '{PHONE_PATTERN}')) WHERE n > 1
        UNION ALL
        SELECT 'missing_consent_all', customer_id FROM customers WHERE NOT ({recorded})
        UNION ALL
        SELECT 'unreachable', customer_id FROM customers WHERE NOT ({reachable})
        UNION ALL
        SELECT 'stale', c.customer_id FROM customers c
        WHERE coalesce(c.member_since, DATE '1900-01-01') < $cutoff
          AND NOT EXISTS (SELECT 1 FROM interactions i WHERE i.customer_id = c.customer_id AND i.ts >= $cutoff)
          AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.customer_id = c.customer_id AND t.ts >= $cutoff)
        ORDER BY kind, customer_id
    """
    cutoff = pd.Timestamp(as_of) - pd.DateOffset(months=config.features.stale_months)
    return con.execute(sql, {"cutoff": cutoff.to_pydatetime()}).df()


def table_checks(con: duckdb.DuckDBPyConnection) -> list[Check]:
    """Row-level checks: references to unknown customers/decisions, duplicate keys and rows."""
    checks = []
    for table in TABLES.values():
        rows = _scalar(con, f"SELECT count(*) FROM {table.name}")
        for fk in table.references:
            missing = f"NOT EXISTS (SELECT 1 FROM {fk.ref_table} r WHERE r.{fk.ref_column} = t.{fk.column})"
            found = con.execute(
                f"SELECT count(*) OVER (), t.{fk.column} FROM {table.name} t WHERE {missing} "
                f"ORDER BY t.{fk.column} LIMIT {MAX_EXAMPLES}"
            ).fetchall()
            checks.append(
                Check(
                    f"unknown_{fk.ref_column.removesuffix('_id')}:{table.name}",
                    f"{table.name}: rows pointing at an unknown {fk.ref_column}",
                    "rows",
                    found[0][0] if found else 0,
                    rows,
                    f"import the missing {fk.ref_table} or delete the rows (they predate import checks)",
                    tuple(r[1] for r in found),
                )
            )
        if table.key:
            keys = ", ".join(table.key)
            dup = _scalar(con, f"SELECT count(*) - count(DISTINCT ({keys})) FROM {table.name}")
            title, fix = f"{table.name}: duplicate keys ({keys})", "keep one row per key"
        else:
            dup = _scalar(
                con, f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM {table.name})) FROM {table.name}"
            )
            title, fix = f"{table.name}: identical rows", "delete the repeated rows (a file imported twice?)"
        checks.append(Check(f"duplicates:{table.name}", title, "rows", dup, rows, fix))
    return checks


def channel_coverage(con: duckdb.DuckDBPyConnection, config: NextbestConfig) -> tuple[ChannelCoverage, ...]:
    """Consent, unknown consent and reachability shares per configured channel."""
    channels = config.channels.channels
    _check_fields([c for c in channels if c.personal])
    parts = []
    for c in channels:
        if c.consent_field is None:
            parts += ["1.0", "0.0", "1.0"]
        else:
            parts += [
                f"avg(coalesce({c.consent_field}, false)::DOUBLE)",
                f"avg(({c.consent_field} IS NULL)::DOUBLE)",
                f"avg(({_reachable_sql(c)})::DOUBLE)",
            ]
    row = con.execute(f"SELECT count(*), {', '.join(parts)} FROM customers").fetchone()
    if not row[0]:
        return tuple(ChannelCoverage(c.id, c.personal, 0.0, 0.0, 0.0) for c in channels)
    values = row[1:]
    return tuple(
        ChannelCoverage(c.id, c.personal, float(values[3 * i]), float(values[3 * i + 1]), float(values[3 * i + 2]))
        for i, c in enumerate(channels)
    )


def completeness(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, float]]:
    """Share of null values per column of every contract table (0 for empty tables)."""
    out = {}
    for table in TABLES.values():
        counts = ", ".join(f'count("{c}")' for c in table.column_names)
        row = con.execute(f"SELECT count(*), {counts} FROM {table.name}").fetchone()
        n = row[0]
        out[table.name] = {c: (1 - v / n) if n else 0.0 for c, v in zip(table.column_names, row[1:], strict=True)}
    return out


def _reachable_sql(channel: Channel) -> str:
    consent = f"coalesce({channel.consent_field}, false)"
    if channel.validity_field is None:
        return consent
    return f"({consent} AND coalesce({channel.validity_field}, false))"


def _check_fields(channels: list[Channel]) -> None:
    known = set(CUSTOMERS.column_names)
    for c in channels:
        for name in (c.consent_field, c.validity_field):
            if name is not None and name not in known:
                raise ConfigError(
                    f"channels.yaml: channel {c.id!r} names {name!r}, which is not a customers column; "
                    f"use one of {', '.join(n for n in CUSTOMERS.column_names if n.startswith(('consent_', 'valid_')))}"
                )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])
