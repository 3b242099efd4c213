"""Contact histories from the two stores: the warehouse's past and the live store's recent rows.

The warehouse holds every decision up to the last ``nextbest data sync`` (and
the historical log a user imported); the live store holds every decision the
services made, synced or not. A history that counts both without counting a
synced row twice reads the warehouse together with its sync mark for the live
store (:class:`BaseHistory`) and adds only the live rows after that mark.

A :class:`BaseHistory` is read once per serving state, so no request reads the
warehouse; it covers decision times from its snapshot's as-of on (the policy's
look-back before that is loaded with it).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.history import ContactHistory
from nextbest.workspace import Workspace

#: Warehouse table of sync marks: per live store and live table, the last ``seq`` copied.
SYNC_TABLE = "live_sync"
_EVENTS = ("customer_id", "ts", "offer_id", "channel")
_NEGATIVES = ("customer_id", "ts", "outcome")


def lookback_days(config: NextbestConfig) -> int:
    """How far back the contact policy (caps, cool-downs, suppressions, trigger re-fires) and the models'
    contact pressure look, in days."""
    from nextbest.features.contacts import PRESSURE_HORIZON_DAYS

    p = config.policy.contact
    return max(
        p.window_days, p.offer_cooldown_days, p.complaint_suppression_days, p.negative_response_suppression_days,
        *(t.refire_cooldown_days for t in config.policy.triggers), PRESSURE_HORIZON_DAYS + 1,
    )


def sync_marks(con: duckdb.DuckDBPyConnection, store_id: str) -> dict[str, int]:
    """The warehouse's sync marks for the live store ``store_id`` (table → last seq copied)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_catalog = current_database()",
        [SYNC_TABLE],
    ).fetchone()
    if not exists or not exists[0]:
        return {}
    rows = con.execute(f"SELECT table_name, seq FROM {SYNC_TABLE} WHERE store_id = ?", [store_id]).fetchall()
    return {t: int(s) for t, s in rows}


def _frame(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame.reindex(columns=list(columns)).copy()
    out["customer_id"] = out["customer_id"].astype("int64")
    out["ts"] = pd.to_datetime(out["ts"]).astype("datetime64[us]")
    for c in columns[2:]:
        out[c] = out[c].astype(object)
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class BaseHistory:
    """The warehouse's part of the contact history, as of one read.

    Attributes
    ----------
    start
        Rows with a decision time after this are held: histories built on it are
        exact for decision times from ``start`` + the look-back on.
    events, negatives
        Contacted decisions (``customer_id, ts, offer_id, channel``) and
        complaints/unsubscribes (``customer_id, ts, outcome``) after ``start``.
    offer_totals, channel_days
        All-time contacts per offer; contacts per (day, channel) from ``start``'s day on.
    marks
        The warehouse's sync marks for the live store: live rows up to them are in the frames already.
    """

    start: dt.datetime
    events: pd.DataFrame
    negatives: pd.DataFrame
    offer_totals: Counter[str]
    channel_days: Counter[tuple[dt.date, str]]
    marks: dict[str, int]
    lookback: int

    @property
    def exact_from(self) -> dt.datetime:
        """The earliest decision time a history built on this base counts exactly."""
        return self.start + dt.timedelta(days=self.lookback)

    @classmethod
    def read(
        cls, con: duckdb.DuckDBPyConnection, config: NextbestConfig, as_of: dt.datetime, store_id: str
    ) -> BaseHistory:
        """Read what the contact policy needs for decisions from ``as_of`` on.

        Parameters
        ----------
        con
            Warehouse connection (read-only is enough).
        config
            Configuration (the policy's periods).
        as_of
            Earliest decision time to serve exactly (a snapshot's as-of).
        store_id
            The live store whose sync marks tell which of its rows the warehouse holds.
        """
        days = lookback_days(config)
        start = pd.Timestamp(as_of).to_pydatetime() - dt.timedelta(days=days)
        events = con.execute(
            "SELECT customer_id, ts, offer_id, channel FROM decisions "
            "WHERE contacted AND offer_id IS NOT NULL AND ts > ?",
            [start],
        ).df()
        negatives = con.execute(
            "SELECT d.customer_id, r.ts, r.outcome FROM responses r JOIN decisions d USING (decision_id) "
            "WHERE r.outcome IN ('complaint', 'unsubscribe') AND r.ts > ?",
            [start],
        ).df()
        totals = con.execute(
            "SELECT offer_id, count(*) FROM decisions WHERE contacted AND offer_id IS NOT NULL GROUP BY 1"
        ).fetchall()
        per_day = con.execute(
            "SELECT CAST(ts AS DATE), channel, count(*) FROM decisions "
            "WHERE contacted AND channel IS NOT NULL AND ts >= ? GROUP BY 1, 2",
            [dt.datetime.combine(start.date(), dt.time())],
        ).fetchall()
        return cls(
            start=start,
            events=_frame(events, _EVENTS),
            negatives=_frame(negatives, _NEGATIVES),
            offer_totals=Counter({o: int(n) for o, n in totals}),
            channel_days=Counter({(d, c): int(n) for d, c, n in per_day}),
            marks=sync_marks(con, store_id),
            lookback=days,
        )

    @classmethod
    def empty(cls, config: NextbestConfig, as_of: dt.datetime) -> BaseHistory:
        """A base with no warehouse rows (tests, a new deployment)."""
        days = lookback_days(config)
        return cls(
            start=pd.Timestamp(as_of).to_pydatetime() - dt.timedelta(days=days),
            events=_frame(pd.DataFrame(columns=list(_EVENTS)), _EVENTS),
            negatives=_frame(pd.DataFrame(columns=list(_NEGATIVES)), _NEGATIVES),
            offer_totals=Counter(), channel_days=Counter(), marks={}, lookback=days,
        )

    def without(self, customer_ids: set[int]) -> BaseHistory:
        """This base less the rows of erased customers (global counts keep them: they were contacts)."""
        if not customer_ids:
            return self
        ids = np.fromiter(customer_ids, dtype=np.int64)
        return replace(
            self,
            events=self.events[~self.events["customer_id"].isin(ids)].reset_index(drop=True),
            negatives=self.negatives[~self.negatives["customer_id"].isin(ids)].reset_index(drop=True),
        )


def build_history(
    config: NextbestConfig, base: BaseHistory, contacts: pd.DataFrame, negatives: pd.DataFrame
) -> ContactHistory:
    """A contact history of ``base`` plus live rows after its marks.

    Parameters
    ----------
    config
        Configuration.
    base
        The warehouse's part.
    contacts
        Live contacted decisions after ``base.marks['decisions']``: ``customer_id, ts, offer_id, channel``.
    negatives
        Live complaints and unsubscribes after ``base.marks['outcomes']``: ``customer_id, ts, outcome``.
    """
    live_events = _frame(contacts, _EVENTS)
    totals = Counter(base.offer_totals)
    days = Counter(base.channel_days)
    if len(live_events):
        totals.update(live_events["offer_id"].dropna().tolist())
        per_day = live_events.dropna(subset=["channel"])
        days.update(zip(per_day["ts"].dt.date.tolist(), per_day["channel"].tolist(), strict=True))
        live_events = live_events[live_events["ts"] > pd.Timestamp(base.start)]
    live_negatives = _frame(negatives, _NEGATIVES)
    return ContactHistory(
        config,
        events=pd.concat([base.events, live_events], ignore_index=True) if len(live_events) else base.events,
        negatives=pd.concat([base.negatives, live_negatives], ignore_index=True) if len(live_negatives) else base.negatives,
        offer_totals=totals,
        channel_days=days,
    )


def read_history(ws: Workspace, config: NextbestConfig, at: dt.datetime) -> ContactHistory:
    """The contact history at ``at`` from both stores (what a CLI command decides with).

    Parameters
    ----------
    ws
        The workspace: its warehouse (read-only) and live store.
    config
        Configuration.
    at
        Decision time (naive UTC).
    """
    from nextbest.live.store import LiveStore
    from nextbest.warehouse.db import connect

    store = LiveStore.for_workspace(ws, writer="cli")
    try:
        con = connect(ws.warehouse_path, read_only=True)
        try:
            base = BaseHistory.read(con, config, at, store.store_id)
        finally:
            con.close()
        with store.reading() as live:
            contacts = store.contacts_after(live, base.marks.get("decisions", 0), base.start)
            negatives = store.negatives_after(live, base.marks.get("outcomes", 0))
    finally:
        store.close()
    return build_history(config, base, contacts, negatives)
