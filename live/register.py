"""Registering decisions and outcomes in the live store: one function for every writer.

The scoring service's group commit, ``nextbest rank``, batch decisions and the
closed-loop simulator all write through :func:`write`, inside one serialised
write transaction of :class:`~nextbest.live.store.LiveStore`:

1. a :class:`ContactGate` (the service's) first reads what other writers
   committed since its last transaction, so its history is the committed truth;
2. decisions of erased customers lose their id (they were ranked as cold starts);
3. each contacted decision is admitted only if the contact policy still allows
   it against that truth (a contact *reservation*: two workers cannot both take
   a customer's last contact of the week), and the admitted ones are inserted;
4. outcomes of known decisions are inserted once per (decision, outcome);
   complaints and unsubscribes also become consent changes.

The transaction commits before any caller hears back, so what a caller
acknowledges is durable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from nextbest.config import NextbestConfig
from nextbest.decisioning.candidates import PairGrid, PolicyArrays, contact_blocked
from nextbest.decisioning.history import ContactHistory
from nextbest.errors import NotFoundError
from nextbest.live.history import BaseHistory, build_history
from nextbest.live.store import DECISION_COLUMNS, NEGATIVE_OUTCOMES, Cursor, LiveStore

#: ``customer_id`` a decision is logged under once its customer was erased.
ERASED_ID = -1
_NO_CONTACTS = pd.DataFrame(columns=["customer_id", "ts", "offer_id", "channel"])
_NO_NEGATIVES = pd.DataFrame(columns=["customer_id", "ts", "outcome"])


@dataclass(frozen=True)
class RecordedFeedback:
    """What recording one outcome did."""

    decision_id: str
    customer_id: int
    outcome: str
    #: False when the same (decision_id, outcome) had been recorded before.
    created: bool


@dataclass(frozen=True)
class News:
    """What other writers committed since a gate's last transaction."""

    #: Contacted decisions: ``customer_id, ts, offer_id, channel``.
    contacts: pd.DataFrame
    #: Complaints and unsubscribes: ``customer_id, ts, outcome``.
    negatives: pd.DataFrame
    #: Customers erased.
    erased: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(len(self.contacts) or len(self.negatives) or self.erased)


@dataclass
class Written:
    """The result of one :func:`write`."""

    #: Decision ids refused because the contact policy no longer allowed them (not stored).
    rejected: set[str] = field(default_factory=set)
    #: One per outcome row, in order: what was recorded, or the error of an unknown decision.
    outcomes: list[RecordedFeedback | NotFoundError] = field(default_factory=list)
    news: News | None = None


def _ts(value: Any) -> dt.datetime:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def apply_news(history: ContactHistory, news: News) -> None:
    """Record other writers' contacts and complaints/unsubscribes into ``history``."""
    contacts = news.contacts
    if len(contacts):
        history.record_contacts(
            contacts["customer_id"].to_numpy(np.int64),
            pd.to_datetime(contacts["ts"]).to_numpy("datetime64[us]"),
            contacts["offer_id"].to_numpy(dtype=object),
            contacts["channel"].to_numpy(dtype=object),
        )
    if len(news.negatives):
        # Rarely more than a few rows; an empty frame's itertuples alone costs more than a commit's inserts.
        for cid, ts, outcome in news.negatives.itertuples(index=False, name=None):
            history.record_negative(np.array([cid], dtype=np.int64), _ts(ts), outcome)


class ContactGate:
    """A writer's view of every committed contact, kept current inside its write transactions.

    Parameters
    ----------
    store
        The live store.
    config
        Configuration (the contact policy).
    base
        The warehouse's part of the history (its marks say which live rows it holds).
    """

    def __init__(self, store: LiveStore, config: NextbestConfig, base: BaseHistory) -> None:
        self.store = store
        self.config = config
        self.base = base
        self.arrays = PolicyArrays.of(config)
        self.offer_pos = {o.id: i for i, o in enumerate(config.offers.offers)}
        self.channel_pos = {c.id: i for i, c in enumerate(config.channels.channels)}
        self.history: ContactHistory = ContactHistory.empty(config)
        self.cursor = Cursor()
        # Customers with contacts or negatives from other writers since the reset, and whether
        # any foreign contact came at all: without them, the caller's own check at ranking
        # time (on a history that holds everything this gate holds) already decided the contact.
        self.foreign: set[int] = set()
        self.foreign_any = False
        # Every erased id: caught up inside each transaction, so it is exact there.
        self.erased: set[int] = set()
        self.capped_offers = {o.id for o in config.offers.offers if o.max_contacts is not None}
        self.capped_channels = {c.id for c in config.channels.channels if c.daily_capacity is not None}

    def reset(self, con: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rebuild from the base and the live rows after its marks; returns those live rows.

        The rows (contacts, negatives) let the caller build a history of its own
        that starts from exactly the same point.
        """
        contacts = self.store.contacts_after(con, self.base.marks.get("decisions", 0), self.base.start)
        negatives = self.store.negatives_after(con, self.base.marks.get("outcomes", 0))
        self.history = build_history(self.config, self.base, contacts, negatives)
        self.cursor = self.store.cursor_now(con)
        self.foreign, self.foreign_any = set(), False
        self.erased = {c for _, c in self.store.erased_after(con, 0)}
        return contacts, negatives

    def catch_up(self, con: Connection) -> News:
        """Read and apply what other writers committed since the last transaction.

        Rows are read as plain tuples and only the other writers' are applied: a
        commit usually finds none, and building frames for nothing would cost more
        than the rest of the transaction.
        """
        me = self.store.writer
        contacts, negatives, erased = self.store.news_rows(con, self.cursor)
        self.cursor = Cursor(
            decisions=max([self.cursor.decisions, *(r.seq for r in contacts)]),
            outcomes=max([self.cursor.outcomes, *(r.seq for r in negatives)]),
            consent_changes=self.cursor.consent_changes,
            tombstones=erased[-1][0] if erased else self.cursor.tombstones,
        )
        self.erased.update(c for _, c in erased)
        foreign = [r for r in contacts if r.writer != me]
        foreign_negatives = [r for r in negatives if r.writer != me]
        self.foreign.update(r.customer_id for r in foreign)
        self.foreign.update(r.customer_id for r in foreign_negatives)
        self.foreign_any = self.foreign_any or bool(foreign)
        news = News(
            contacts=pd.DataFrame([(r.customer_id, r.ts, r.offer_id, r.channel) for r in foreign],
                                  columns=["customer_id", "ts", "offer_id", "channel"]) if foreign else _NO_CONTACTS,
            negatives=pd.DataFrame([(r.customer_id, r.ts, r.outcome) for r in foreign_negatives],
                                   columns=["customer_id", "ts", "outcome"]) if foreign_negatives else _NO_NEGATIVES,
            erased=tuple(c for _, c in erased),
        )
        apply_news(self.history, news)
        return news

    def admit(self, row: dict[str, Any], checked: bool = False) -> bool:
        """Whether the contact policy allows the contacted decision ``row`` now; records it if so.

        ``checked``: the writer checked the contact policy itself when it decided, on a
        history holding everything of this gate's except other writers' rows; the check
        is then repeated only where those rows can change its outcome.
        """
        offer = self.offer_pos.get(row["offer_id"], -1)
        channel = self.channel_pos.get(row["channel"], -1)
        ids = np.array([row["customer_id"]], dtype=np.int64)
        at = row["ts"]
        capped = row["offer_id"] in self.capped_offers or row["channel"] in self.capped_channels
        unchanged = checked and row["customer_id"] not in self.foreign and not (capped and self.foreign_any)
        if offer >= 0 and channel >= 0 and not unchanged:
            grid = PairGrid(np.array([offer]), np.array([channel]))
            # Checked at the newest of this contact and the customer's others: a contact another
            # writer made a moment *later* (its clock, or a replay's) shares the rolling window too.
            latest = self.history.latest_contact(row["customer_id"])
            views = [at] if latest is None or latest <= at else [at, latest]
            if any(bool(contact_blocked(self.config, grid, self.history.view(ids, t), self.arrays)[0, 0]) for t in views):
                return False
        self.history.record_contacts(
            ids, np.array([pd.Timestamp(at).as_unit("us").to_datetime64()]),
            np.array([row["offer_id"]], dtype=object), np.array([row["channel"]], dtype=object),
        )
        return True


def decision_dicts(frame: pd.DataFrame, writer: str) -> list[dict[str, Any]]:
    """Rows of a ``decisions`` frame as insertable dicts (plain Python values, naive UTC times)."""
    return [
        decision_dict(dict(zip(DECISION_COLUMNS, values, strict=True)), writer)
        for values in frame.loc[:, list(DECISION_COLUMNS)].itertuples(index=False, name=None)
    ]


def decision_dict(row: dict[str, Any], writer: str) -> dict[str, Any]:
    """One decision row as an insertable dict (plain Python values, naive UTC time, ``writer``)."""
    def value(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            return None
        return v.item() if isinstance(v, np.generic) else v

    clean = {k: value(v) for k, v in row.items()}
    clean["customer_id"] = int(clean["customer_id"])
    clean["ts"] = _ts(clean["ts"])
    clean["contacted"] = bool(clean["contacted"])
    for k in ("propensity", "score"):
        if clean.get(k) is not None:
            clean[k] = float(clean[k])
    clean["writer"] = writer
    return clean


def write(
    con: Connection,
    store: LiveStore,
    decision_rows: Sequence[dict[str, Any]] = (),
    outcome_rows: Sequence[dict[str, Any]] = (),
    gate: ContactGate | None = None,
    checked: bool = False,
) -> Written:
    """Register decisions and outcomes in one open write transaction (see the module docstring).

    Parameters
    ----------
    con
        A connection inside :meth:`LiveStore.writing`.
    store
        The store.
    decision_rows
        Decision dicts (:data:`DECISION_COLUMNS`, ``writer``), in the order they were decided.
    outcome_rows
        ``decision_id, ts, outcome, revenue`` dicts (``ts`` naive UTC).
    gate
        The writer's contact gate; ``None`` stores contacted decisions without checking them
        (batch runs that decided with a history they read themselves).
    checked
        The decisions were made against a history holding all of ``gate``'s own rows
        (the service's): only other writers' rows make the gate check again.
    """
    written = Written()
    if gate is not None:
        written.news = gate.catch_up(con)
    rows = [dict(r) for r in decision_rows]
    if rows:
        ids = [r["customer_id"] for r in rows]
        erased = gate.erased.intersection(ids) if gate is not None else store.erased_among(con, ids)
        kept = []
        for row in rows:
            if row["customer_id"] in erased:
                row["customer_id"] = ERASED_ID
            if gate is not None and row["contacted"] and row["offer_id"] is not None and not gate.admit(row, checked):
                written.rejected.add(row["decision_id"])
                continue
            kept.append(row)
        store.insert_decisions(con, kept)
    if outcome_rows:
        _write_outcomes(con, store, outcome_rows, gate, written)
    return written


def _write_outcomes(
    con: Connection, store: LiveStore, rows: Sequence[dict[str, Any]], gate: ContactGate | None, written: Written
) -> None:
    ids = [str(r["decision_id"]) for r in rows]
    owners = store.owners(con, ids)
    seen = store.recorded_outcomes(con, [i for i in ids if i in owners])
    new_outcomes: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for row, did in zip(rows, ids, strict=True):
        owner = owners.get(did)
        if owner is None:
            written.outcomes.append(
                NotFoundError(f"decision_id {did!r} is unknown: send the decision_id returned by /rank or /rank_batch")
            )
            continue
        customer_id, channel = owner
        key = (did, str(row["outcome"]))
        created = key not in seen
        if created:
            seen.add(key)
            ts = _ts(row["ts"])
            revenue = row.get("revenue")
            revenue = None if revenue is None or (isinstance(revenue, float) and np.isnan(revenue)) else float(revenue)
            new_outcomes.append({
                "decision_id": did, "customer_id": customer_id, "ts": ts, "outcome": key[1], "revenue": revenue,
                "writer": store.writer,
            })
            if key[1] in NEGATIVE_OUTCOMES:
                changes.append({"customer_id": customer_id, "channel": channel, "ts": ts, "kind": key[1], "decision_id": did})
                if gate is not None:
                    gate.history.record_negative(np.array([customer_id], dtype=np.int64), ts, key[1])
        written.outcomes.append(RecordedFeedback(did, customer_id, key[1], created))
    store.insert_outcomes(con, new_outcomes)
    store.insert_consent_changes(con, changes)


def register_decisions(store: LiveStore, frame: pd.DataFrame) -> int:
    """Register a batch run's decisions (a ``decisions`` frame) in one transaction; returns rows stored."""
    if frame.empty:
        return 0
    rows = decision_dicts(frame, store.writer)
    with store.writing() as con:
        write(con, store, rows)
    return len(rows)


def record_outcomes(store: LiveStore, frame: pd.DataFrame) -> list[RecordedFeedback]:
    """Record ``decision_id, ts, outcome, revenue`` rows as ``POST /feedback`` does, all or nothing.

    Raises
    ------
    NotFoundError
        When a decision_id was never registered (nothing is stored then).
    """
    if frame.empty:
        return []
    rows = frame.loc[:, ["decision_id", "ts", "outcome", "revenue"]].to_dict("records")
    with store.writing() as con:
        written = write(con, store, outcome_rows=rows)
        failed = next((r for r in written.outcomes if isinstance(r, NotFoundError)), None)
        if failed is not None:
            raise failed
    return [r for r in written.outcomes if isinstance(r, RecordedFeedback)]
