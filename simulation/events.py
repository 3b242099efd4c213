"""Writing what happened in the simulated world into the policy's warehouse, when it happens.

A decision's outcomes arrive over the following days (a conversion may come
two weeks later). They wait in :class:`PendingEvents` and are written once
their time has come, so a feature snapshot or a contact history never sees the
future. Outcomes go into the live store through the service's own feedback code
(:func:`nextbest.live.register.record_outcomes`, or ``POST /feedback`` with
``--via-server``); ``nextbest data sync`` brings them into the warehouse, and an
unsubscribe withdraws the channel's consent in ``customers`` there, as a CRM would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from nextbest.live.register import record_outcomes
from nextbest.live.store import LiveStore

EMPTY = pd.DataFrame()


@dataclass(frozen=True)
class DueEvents:
    """Events whose time has come: ``responses`` rows and induced interactions/transactions."""

    responses: pd.DataFrame
    interactions: pd.DataFrame
    transactions: pd.DataFrame


@dataclass
class PendingEvents:
    """Outcomes drawn by the world but not yet happened, by timestamp."""

    responses: list[pd.DataFrame] = field(default_factory=list)
    interactions: list[pd.DataFrame] = field(default_factory=list)
    transactions: list[pd.DataFrame] = field(default_factory=list)

    def add(self, responses: pd.DataFrame, interactions: pd.DataFrame, transactions: pd.DataFrame) -> None:
        """Queue a batch of outcomes (any timestamps)."""
        for queue, frame in ((self.responses, responses), (self.interactions, interactions), (self.transactions, transactions)):
            if len(frame):
                queue.append(frame)

    def pop_due(self, until: np.datetime64 | pd.Timestamp) -> DueEvents:
        """Remove and return the events with ``ts <= until``."""
        limit = pd.Timestamp(until)

        def split(queue: list[pd.DataFrame]) -> pd.DataFrame:
            if not queue:
                return EMPTY
            frame = pd.concat(queue, ignore_index=True)
            due = (frame["ts"] <= limit).to_numpy()
            queue.clear()
            if (~due).any():
                queue.append(frame.loc[~due].reset_index(drop=True))
            return frame.loc[due].reset_index(drop=True)

        return DueEvents(split(self.responses), split(self.interactions), split(self.transactions))

    def __len__(self) -> int:
        return sum(len(f) for q in (self.responses, self.interactions, self.transactions) for f in q)


def append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Append ``frame`` to ``table`` by column name in one Arrow scan; returns rows written."""
    if frame.empty:
        return 0
    name = "_nb_sim_rows"
    con.register(name, pa.Table.from_pandas(frame, preserve_index=False))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")
    finally:
        con.unregister(name)
    return len(frame)


def record_responses(store: LiveStore, responses: pd.DataFrame) -> int:
    """Store outcomes exactly as ``POST /feedback`` does (idempotent per decision and outcome); returns rows new.

    An unsubscribe also becomes a consent change, which ``nextbest data sync``
    applies to ``customers``, as a CRM would.
    """
    if responses.empty:
        return 0
    frame = responses.assign(ts=pd.to_datetime(responses["ts"]).astype("datetime64[us]"))
    return sum(r.created for r in record_outcomes(store, frame))
