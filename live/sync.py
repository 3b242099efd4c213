"""``nextbest data sync``: copy new live rows into the warehouse, incrementally and idempotently.

For each live table the warehouse keeps a mark, the last ``seq`` it copied
(table ``live_sync``, per live store id). A sync reads the rows after the
marks, inserts them (``INSERT OR IGNORE`` on the tables' keys, so a sync cut
short and run again changes nothing twice) and moves the marks, all in one
warehouse transaction. Live writers are serialised, so rows after a mark
form an exact increment (:mod:`nextbest.live.store`).

What lands where:

===================  ==========================================================
live ``decisions``   warehouse ``decisions`` (the exposure log)
live ``outcomes``    warehouse ``responses``
``consent_changes``  warehouse ``consent_changes``; an unsubscribe also sets the
                     channel's consent field of ``customers`` to false, as a CRM would
===================  ==========================================================

Batch jobs (``features build``, ``train``, ``ab analyze``, ``report``,
``simulate``) run a sync first, so they read every decision the services made.
The service itself never writes the warehouse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.live.history import SYNC_TABLE, sync_marks
from nextbest.live.schema import consent_changes, decisions, outcomes
from nextbest.live.store import DECISION_COLUMNS, LiveStore
from nextbest.warehouse.db import connect, transaction
from nextbest.workspace import Workspace

#: Live rows read per round trip: bounds the sync's memory, whatever the backlog.
CHUNK = 100_000

_CONSENT_DDL = """CREATE TABLE IF NOT EXISTS consent_changes (
  customer_id BIGINT NOT NULL, channel VARCHAR, ts TIMESTAMP NOT NULL, kind VARCHAR NOT NULL,
  decision_id VARCHAR, PRIMARY KEY (customer_id, ts, kind, decision_id))"""
_MARKS_DDL = f"""CREATE TABLE IF NOT EXISTS {SYNC_TABLE} (
  store_id VARCHAR NOT NULL, table_name VARCHAR NOT NULL, seq BIGINT NOT NULL, synced_at TIMESTAMP NOT NULL,
  PRIMARY KEY (store_id, table_name))"""


@dataclass(frozen=True)
class SyncReport:
    """Rows a sync copied per live table, and consent fields it withdrew."""

    store: str
    copied: dict[str, int] = field(default_factory=dict)
    consent_withdrawn: int = 0

    @property
    def total(self) -> int:
        return sum(self.copied.values())

    def as_dict(self) -> dict[str, object]:
        return {"store": self.store, "copied": self.copied, "consent_withdrawn": self.consent_withdrawn}


def sync(ws: Workspace, store: LiveStore | None = None, con: duckdb.DuckDBPyConnection | None = None) -> SyncReport:
    """Copy the live rows the warehouse lacks into it (see the module docstring).

    Parameters
    ----------
    ws
        The workspace (warehouse and configuration).
    store
        The live store; default the workspace's.
    con
        An open read-write warehouse connection to use; default one opened and closed here.

    Returns
    -------
    SyncReport
    """
    own_store = store is None
    store = store or LiveStore.for_workspace(ws, writer="sync")
    own_con = con is None
    con = con or connect(ws.warehouse_path)
    try:
        config = ws.config() if ws.config_dir.exists() else None
        return _sync(con, store, config)
    finally:
        if own_con:
            con.close()
        if own_store:
            store.close()


def _sync(con: duckdb.DuckDBPyConnection, store: LiveStore, config: NextbestConfig | None) -> SyncReport:
    copied = {t.name: 0 for t in (decisions, outcomes, consent_changes)}
    withdrawn = 0
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with transaction(con):
        con.execute(_MARKS_DDL)
        con.execute(_CONSENT_DDL)
        marks = sync_marks(con, store.store_id)
        with store.reading() as live:
            for table, copy in ((decisions, _copy_decisions), (outcomes, _copy_outcomes), (consent_changes, _copy_consent)):
                mark = marks.get(table.name, 0)
                while True:
                    frame = store.rows_after(live, table, mark, CHUNK)
                    if frame.empty:
                        break
                    withdrawn += copy(con, frame, config)
                    copied[table.name] += len(frame)
                    mark = int(frame["seq"].max())
                con.execute(
                    f"INSERT OR REPLACE INTO {SYNC_TABLE} VALUES (?, ?, ?, ?)", [store.store_id, table.name, mark, now]
                )
    return SyncReport(store=store.safe_url, copied=copied, consent_withdrawn=withdrawn)


def _copy_decisions(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, _config: NextbestConfig | None) -> int:
    rows = frame.loc[:, list(DECISION_COLUMNS)].copy()
    rows["ts"] = pd.to_datetime(rows["ts"]).astype("datetime64[us]")
    rows["contacted"] = rows["contacted"].astype(bool)
    for c in ("propensity", "score"):
        rows[c] = pd.to_numeric(rows[c], errors="coerce").astype(float)
    con.register("_nb_live_decisions", rows)
    try:
        cols = ", ".join(DECISION_COLUMNS)
        con.execute(f"INSERT OR IGNORE INTO decisions ({cols}) SELECT {cols} FROM _nb_live_decisions")
    finally:
        con.unregister("_nb_live_decisions")
    return 0


def _copy_outcomes(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, _config: NextbestConfig | None) -> int:
    rows = frame.loc[:, ["decision_id", "ts", "outcome", "revenue"]].copy()
    rows["ts"] = pd.to_datetime(rows["ts"]).astype("datetime64[us]")
    rows["revenue"] = pd.to_numeric(rows["revenue"], errors="coerce").astype(float)
    con.register("_nb_live_outcomes", rows)
    try:
        con.execute(
            "INSERT OR IGNORE INTO responses (decision_id, ts, outcome, revenue) "
            "SELECT decision_id, ts, outcome, revenue FROM _nb_live_outcomes"
        )
    finally:
        con.unregister("_nb_live_outcomes")
    return 0


def _copy_consent(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, config: NextbestConfig | None) -> int:
    rows = frame.loc[:, ["customer_id", "channel", "ts", "kind", "decision_id"]].copy()
    rows["ts"] = pd.to_datetime(rows["ts"]).astype("datetime64[us]")
    rows["customer_id"] = rows["customer_id"].astype("int64")
    con.register("_nb_live_consent", rows)
    try:
        con.execute("INSERT OR IGNORE INTO consent_changes SELECT customer_id, channel, ts, kind, decision_id FROM _nb_live_consent")
    finally:
        con.unregister("_nb_live_consent")
    if config is None:
        return 0
    withdrawn = 0
    unsubscribed = rows[rows["kind"] == "unsubscribe"]
    for channel in config.channels.channels:
        ids = unsubscribed.loc[unsubscribed["channel"] == channel.id, "customer_id"].unique().tolist()
        if channel.consent_field and ids:
            # The field name comes from the validated configuration, never from a request.
            con.execute(
                f"UPDATE customers SET {channel.consent_field} = false WHERE customer_id IN (SELECT UNNEST(?::BIGINT[]))",
                [[int(i) for i in ids]],
            )
            withdrawn += len(ids)
    return withdrawn
