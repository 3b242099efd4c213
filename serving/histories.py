"""Contact histories of the running service, by decision time.

The contact policy counts a customer's recent contacts, complaints and
unsubscribes. The service loads that history once (one set-based query) and the
engine then records every contacted decision into it in memory, so no request
reads the warehouse.

A :class:`~nextbest.decisioning.history.ContactHistory` is loaded for one
decision time and covers the policy's look-back before it. Requests without a
timestamp decide *now* and share the **live** history, reloaded every
``max_age_s`` so contacts made by other workers and processes become visible.
Requests that name another time (replays, the synthetic world's clock) get a
history loaded for that exact time, kept in a small LRU cache, which is what
makes the service agree with ``nextbest rank --at``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nextbest.config import NextbestConfig
from nextbest.decisioning.history import ContactHistory
from nextbest.serving.connections import warehouse_connection


def utc_now() -> dt.datetime:
    """Current time as naive UTC: the warehouse's timestamps are naive UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class HistoryCache:
    """Contact histories keyed by decision time; not thread-safe (the runtime serialises use).

    Parameters
    ----------
    warehouse_path
        The DuckDB warehouse file.
    config
        Configuration (windows, caps).
    flush
        Called before each load so decisions still queued for writing are read back.
    max_age_s
        Reload the live history after this many seconds.
    size
        Histories kept for explicit decision times.
    lock_timeout_s
        How long a load waits for another process's lock.
    """

    def __init__(
        self,
        warehouse_path: Path,
        config: NextbestConfig,
        *,
        flush: Callable[[], object],
        max_age_s: float = 300.0,
        size: int = 8,
        lock_timeout_s: float = 10.0,
    ) -> None:
        self.warehouse_path = warehouse_path
        self.config = config
        self.flush = flush
        self.max_age_s = max_age_s
        self.size = size
        self.lock_timeout_s = lock_timeout_s
        self._live: ContactHistory | None = None
        self._live_at: dt.datetime | None = None
        self._live_loaded = 0.0
        self._fixed: OrderedDict[dt.datetime, ContactHistory] = OrderedDict()

    def _live_fresh(self) -> bool:
        return self._live is not None and time.monotonic() - self._live_loaded <= self.max_age_s

    def live(self) -> tuple[ContactHistory, dt.datetime]:
        """The history for decisions made now, and the time it was loaded at."""
        if not self._live_fresh():
            at = utc_now()
            self._live = self._load(at)
            self._live_at = at
            self._live_loaded = time.monotonic()
        assert self._live_at is not None
        return self._live, self._live_at

    def loaded(self, when: dt.datetime | None = None) -> bool:
        """Whether :meth:`live` (``when`` is ``None``) or :meth:`at` would answer without reading the warehouse."""
        if not self._live_fresh():
            return False
        assert self._live_at is not None
        return when is None or self._live_at <= when or when in self._fixed

    def at(self, when: dt.datetime) -> ContactHistory:
        """The history for decisions at ``when`` (naive UTC)."""
        live, live_at = self.live()
        if live_at <= when:
            # Everything before the live load time is loaded, everything after it was recorded here.
            return live
        history = self._fixed.get(when)
        if history is None:
            history = self._load(when)
            self._fixed[when] = history
            while len(self._fixed) > self.size:
                self._fixed.popitem(last=False)
        else:
            self._fixed.move_to_end(when)
        return history

    def record_negative(self, customer_id: int, ts: dt.datetime, outcome: str) -> None:
        """Add a complaint or unsubscribe to every loaded history."""
        for history in self._histories():
            history.record_negative(np.array([customer_id], dtype=np.int64), ts, outcome)

    def clear(self) -> None:
        """Forget every history; the next request reloads from the warehouse."""
        self._live = None
        self._live_at = None
        self._fixed.clear()

    def _histories(self) -> list[ContactHistory]:
        return ([self._live] if self._live is not None else []) + list(self._fixed.values())

    def _load(self, at: dt.datetime) -> ContactHistory:
        self.flush()
        # Read-write, like every connection of the service: DuckDB refuses a read-only
        # connection while the decision writer of this process has the file open.
        with warehouse_connection(self.warehouse_path, timeout_s=self.lock_timeout_s) as con:
            return ContactHistory.load(con, self.config, at)
