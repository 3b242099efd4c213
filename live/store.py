"""The live store behind one SQLAlchemy URL: SQLite (WAL) embedded, PostgreSQL at scale.

Writes are serialised across every process that shares the store: SQLite's
``BEGIN IMMEDIATE`` takes the database's write lock, PostgreSQL's transaction
advisory lock does the same for all clients of one database. Serialised writers
give two guarantees the rest of nextbest relies on:

* a contact reserved inside a write transaction is checked against every
  contact committed before it, by any worker or machine (no two workers can
  both take a customer's last contact of the week);
* ``seq`` values are committed in increasing order, so "rows after seq N" is an
  exact, gap-free increment for ``nextbest data sync`` and the services' polling.

A write transaction is short (one group commit of the service: a few
milliseconds), so the serialisation costs little; every commit is synchronous
(SQLite ``synchronous=FULL``, PostgreSQL's default ``synchronous_commit``): a row
whose transaction returned survives ``kill -9`` and a power cut.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from nextbest.errors import BadInputError, NextbestError
from nextbest.live import schema
from nextbest.live.schema import consent_changes, decisions, meta, outcomes, tombstones

#: Environment variable naming the live store (a SQLAlchemy URL).
LIVE_URL_ENV = "NEXTBEST_LIVE_URL"
#: PostgreSQL advisory lock key of the store's writers ("nbst").
_WRITE_LOCK_KEY = 0x6E627374
#: Outcomes that withdraw consent or suppress contacts.
NEGATIVE_OUTCOMES: frozenset[str] = frozenset({"complaint", "unsubscribe"})
#: Decision columns shared with the warehouse's ``decisions`` table, in its order.
DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id", "customer_id", "ts", "offer_id", "channel", "arm", "experiment", "propensity",
    "model_version", "score", "contacted",
)


class _Contact(NamedTuple):
    seq: int
    customer_id: int
    ts: dt.datetime
    offer_id: str
    channel: str
    writer: str


class _Negative(NamedTuple):
    seq: int
    customer_id: int
    ts: dt.datetime
    outcome: str
    writer: str


#: Everything a writer must know before it commits, in one statement (ordered by table, then seq).
_NEWS = text(
    "SELECT 'd' AS kind, seq, customer_id, ts, offer_id, channel, writer FROM decisions "
    "WHERE seq > :d AND contacted AND offer_id IS NOT NULL "
    "UNION ALL SELECT 'o', seq, customer_id, ts, outcome, NULL, writer FROM outcomes "
    "WHERE seq > :o AND outcome IN ('complaint', 'unsubscribe') "
    "UNION ALL SELECT 't', seq, customer_id, ts, NULL, NULL, NULL FROM tombstones WHERE seq > :t "
    "ORDER BY 1, 2"
).columns(
    kind=String, seq=BigInteger, customer_id=BigInteger, ts=DateTime, offer_id=String, channel=String, writer=String
)


class StoreUnavailableError(NextbestError):
    """The live store could not be reached or stayed locked; the request can be retried."""


@dataclass(frozen=True)
class Cursor:
    """The highest ``seq`` seen per table: what a poller has already read."""

    decisions: int = 0
    outcomes: int = 0
    consent_changes: int = 0
    tombstones: int = 0


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


class LiveStore:
    """One live store; thread-safe (a connection pool), one instance per process is enough.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/live.db`` or ``postgresql://user@host/db``
        (psycopg 3). Tables are created on first use.
    writer
        Name of this process in the rows it writes (a service worker skips its
        own rows when it polls for the others').
    busy_timeout_s
        How long one statement waits for another writer's lock before the
        store counts as unavailable.

    Raises
    ------
    BadInputError
        The URL is malformed or names a database nextbest does not support.
    StoreUnavailableError
        The database cannot be reached.
    """

    def __init__(self, url: str, *, writer: str | None = None, busy_timeout_s: float = 10.0) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise BadInputError(
                f"{LIVE_URL_ENV}: {url!r} is not a database URL; use e.g. sqlite:///workspace/live.db "
                "or postgresql://user@host:5432/nextbest"
            ) from exc
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise BadInputError(
                f"{LIVE_URL_ENV}: {backend!r} is not supported; use sqlite:///... (one machine) or "
                "postgresql://... (several workers or machines)"
            )
        if backend == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed.render_as_string(hide_password=False)
        self.writer = writer or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.busy_timeout_s = busy_timeout_s
        self.sqlite = backend == "sqlite"
        try:
            self.engine = self._engine(parsed)
        except NoSuchModuleError as exc:
            raise BadInputError(f"{LIVE_URL_ENV}: no driver for {parsed.drivername!r}; use postgresql://...") from exc
        self._store_id: str | None = None
        self._created = threading.Lock()
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        database = parsed.database if self.sqlite else None
        self._lock_path = f"{database}.lock" if database and database != ":memory:" else None
        self.create()

    @classmethod
    def for_workspace(cls, ws: Any, *, writer: str | None = None, busy_timeout_s: float = 10.0) -> LiveStore:
        """The workspace's live store (``NEXTBEST_LIVE_URL``, else ``<workspace>/live.db``)."""
        if ws.live_url.startswith("sqlite:///"):
            ws.root.mkdir(parents=True, exist_ok=True)
        return cls(ws.live_url, writer=writer, busy_timeout_s=busy_timeout_s)

    def _engine(self, url: Any) -> Engine:
        if not self.sqlite:
            return create_engine(
                url, pool_pre_ping=True, pool_size=4, max_overflow=8,
                connect_args={"connect_timeout": max(1, int(self.busy_timeout_s))},
            )
        engine = create_engine(url, connect_args={"timeout": self.busy_timeout_s, "check_same_thread": False})
        busy_ms = int(self.busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own BEGIN handling would start write transactions as DEFERRED,
            # which lets two writers both read and then deadlock on the upgrade.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so an acknowledged row survives a power cut.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("nextbest_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def close(self) -> None:
        """Close the pool's connections (and the lock file)."""
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction serialised with every other writer of the store; commits on exit.

        Raises
        ------
        StoreUnavailableError
            The database is unreachable, or another writer held the lock for the whole busy timeout.
        """
        try:
            with self._exclusive(), self.engine.connect() as con:
                con = con.execution_options(nextbest_write=True)
                with con.begin():
                    if not self.sqlite:
                        con.execute(
                            text("SELECT set_config('lock_timeout', :t, true)"),
                            {"t": f"{int(self.busy_timeout_s * 1000)}ms"},
                        )
                        con.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _WRITE_LOCK_KEY})
                    yield con
        except OperationalError as exc:
            raise StoreUnavailableError(f"live store {self.safe_url} is unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailableError(f"live store {self.safe_url} lost its connection: {exc.orig}") from exc
            raise

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """On SQLite, queue this process's writers and the other processes' on a lock file.

        SQLite's own busy handler polls with sleeps of up to 100 ms, so two workers
        contending for the write lock wait far longer than the few milliseconds a
        commit holds it. A blocking ``flock`` wakes the next writer the moment the
        lock is free (and is released by the kernel if its process dies). Threads of
        one process share the file description, so a thread lock orders them first.
        """
        if not self.sqlite or self._lock_path is None:
            yield
            return
        with self._thread_lock:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read transaction (never waits for writers)."""
        try:
            with self.engine.connect() as con, con.begin():
                yield con
        except OperationalError as exc:
            raise StoreUnavailableError(f"live store {self.safe_url} is unavailable: {exc.orig}") from exc

    @property
    def safe_url(self) -> str:
        """The URL without its password (for messages and logs)."""
        return make_url(self.url).render_as_string(hide_password=True)

    def create(self) -> None:
        """Create the tables if absent and give the store its id (idempotent, safe to race)."""
        with self._created, self.writing() as con:
            schema.metadata.create_all(con, checkfirst=True)
            found = con.execute(select(meta.c.value).where(meta.c.key == "store_id")).scalar()
            if found is None:
                found = uuid.uuid4().hex
                con.execute(insert(meta).values(key="store_id", value=found))
            self._store_id = found

    @property
    def store_id(self) -> str:
        """A random id given at creation: tells the warehouse which store its sync marks refer to."""
        assert self._store_id is not None
        return self._store_id

    # ------------------------------------------------------------------ writing (inside `writing()`)
    @staticmethod
    def insert_decisions(con: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Append decision rows (:data:`DECISION_COLUMNS` plus ``writer``)."""
        if rows:
            con.execute(insert(decisions), list(rows))

    @staticmethod
    def owners(con: Connection, decision_ids: Sequence[str]) -> dict[str, tuple[int, str | None]]:
        """``decision_id -> (customer_id, channel)`` of the decisions among ``decision_ids`` that exist."""
        found: dict[str, tuple[int, str | None]] = {}
        unique = list(dict.fromkeys(decision_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            for did, cid, ch in con.execute(
                select(decisions.c.decision_id, decisions.c.customer_id, decisions.c.channel).where(
                    decisions.c.decision_id.in_(chunk)
                )
            ):
                found[did] = (int(cid), ch)
        return found

    @staticmethod
    def recorded_outcomes(con: Connection, decision_ids: Sequence[str]) -> set[tuple[str, str]]:
        """The ``(decision_id, outcome)`` pairs already stored for ``decision_ids``."""
        seen: set[tuple[str, str]] = set()
        unique = list(dict.fromkeys(decision_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            seen.update(
                (d, o) for d, o in con.execute(
                    select(outcomes.c.decision_id, outcomes.c.outcome).where(outcomes.c.decision_id.in_(chunk))
                )
            )
        return seen

    @staticmethod
    def insert_outcomes(con: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Append outcome rows (``decision_id, customer_id, ts, outcome, revenue, writer``)."""
        if rows:
            con.execute(insert(outcomes), list(rows))

    @staticmethod
    def insert_consent_changes(con: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Append consent changes (``customer_id, channel, ts, kind, decision_id``)."""
        if rows:
            con.execute(insert(consent_changes), list(rows))

    @staticmethod
    def erased_among(con: Connection, customer_ids: Sequence[int]) -> set[int]:
        """The ids among ``customer_ids`` that were erased."""
        unique = list({int(c) for c in customer_ids})
        out: set[int] = set()
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            out.update(int(c) for (c,) in con.execute(select(tombstones.c.customer_id).where(tombstones.c.customer_id.in_(chunk))))
        return out

    # ------------------------------------------------------------------ reading
    @staticmethod
    def rows_after(con: Connection, table: Table, seq: int, limit: int | None = None) -> pd.DataFrame:
        """Rows of ``table`` with ``seq`` above ``seq``, in ``seq`` order (at most ``limit``)."""
        query = select(table).where(table.c.seq > seq).order_by(table.c.seq)
        if limit is not None:
            query = query.limit(limit)
        result = con.execute(query)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    @staticmethod
    def last_seq(con: Connection, table: Table) -> int:
        """The highest ``seq`` of ``table`` (0 when empty)."""
        return int(con.execute(select(func.coalesce(func.max(table.c.seq), 0))).scalar_one())

    def cursor_now(self, con: Connection) -> Cursor:
        """A cursor past every row committed so far."""
        return Cursor(*(self.last_seq(con, t) for t in (decisions, outcomes, consent_changes, tombstones)))

    @staticmethod
    def contacts_after(con: Connection, seq: int, since: dt.datetime | None = None) -> pd.DataFrame:
        """Contacted decisions after ``seq`` (with a decision time after ``since``): what the contact policy counts."""
        query = select(
            decisions.c.seq, decisions.c.decision_id, decisions.c.customer_id, decisions.c.ts,
            decisions.c.offer_id, decisions.c.channel, decisions.c.writer,
        ).where(decisions.c.seq > seq, decisions.c.contacted, decisions.c.offer_id.is_not(None))
        if since is not None:
            query = query.where(decisions.c.ts > since)
        result = con.execute(query.order_by(decisions.c.seq))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    @staticmethod
    def news_rows(con: Connection, cursor: Cursor) -> tuple[list[Any], list[Any], list[tuple[int, int]]]:
        """Contacts, negatives and erasures after ``cursor``, in one round trip (the commit's hot path).

        Returns rows of ``seq, customer_id, ts, offer_id, channel, writer``, rows of
        ``seq, customer_id, ts, outcome, writer`` and ``(seq, customer_id)`` pairs.
        """
        rows = con.execute(_NEWS, {"d": cursor.decisions, "o": cursor.outcomes, "t": cursor.tombstones}).all()
        contacts = [_Contact(r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows if r[0] == "d"]
        negatives = [_Negative(r[1], r[2], r[3], r[4], r[6]) for r in rows if r[0] == "o"]
        erased = [(int(r[1]), int(r[2])) for r in rows if r[0] == "t"]
        return contacts, negatives, erased

    @staticmethod
    def negatives_after(con: Connection, seq: int) -> pd.DataFrame:
        """Complaints and unsubscribes after ``seq``: ``seq, customer_id, ts, outcome, writer``."""
        result = con.execute(
            select(outcomes.c.seq, outcomes.c.customer_id, outcomes.c.ts, outcomes.c.outcome, outcomes.c.writer)
            .where(outcomes.c.seq > seq, outcomes.c.outcome.in_(sorted(NEGATIVE_OUTCOMES)))
            .order_by(outcomes.c.seq)
        )
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    @staticmethod
    def erased_after(con: Connection, seq: int) -> list[tuple[int, int]]:
        """``(seq, customer_id)`` of erasures after ``seq``."""
        return [(int(s), int(c)) for s, c in con.execute(
            select(tombstones.c.seq, tombstones.c.customer_id).where(tombstones.c.seq > seq).order_by(tombstones.c.seq)
        )]

    def logged_ids(self) -> tuple[set[str], set[str]]:
        """Every stored decision id, and every decision id with a stored outcome (audits, tests)."""
        with self.reading() as con:
            return (
                {r[0] for r in con.execute(select(decisions.c.decision_id))},
                {r[0] for r in con.execute(select(outcomes.c.decision_id))},
            )

    # ------------------------------------------------------------------ erasure
    def forget(self, customer_id: int) -> dict[str, int]:
        """Erase a customer's decisions, outcomes and consent changes, and leave a tombstone.

        Returns
        -------
        dict
            Rows removed per table (the tombstone is not counted).
        """
        cid = int(customer_id)
        with self.writing() as con:
            removed = {
                "outcomes": con.execute(delete(outcomes).where(outcomes.c.customer_id == cid)).rowcount,
                "consent_changes": con.execute(delete(consent_changes).where(consent_changes.c.customer_id == cid)).rowcount,
                "decisions": con.execute(delete(decisions).where(decisions.c.customer_id == cid)).rowcount,
            }
            if not self.erased_among(con, [cid]):
                con.execute(insert(tombstones).values(customer_id=cid, ts=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
        return removed
