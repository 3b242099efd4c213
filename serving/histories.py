"""Contact histories of the running service.

The contact policy counts a customer's recent contacts, complaints and
unsubscribes. The service builds one history per serving state from the
warehouse's part (read with the feature snapshot, :class:`BaseHistory`) and the
live store's rows after the warehouse's sync mark; from then on it is kept
current in memory: the worker records each decision it makes, and its
:class:`~nextbest.serving.committer.Committer` hands over what other workers
and processes committed (:meth:`HistoryCache.merge`). No request reads a store.

That history is exact for decision times from the snapshot's as-of on, which
covers requests deciding *now* and the simulated clock. A request deciding
before that (a replay of the past) gets a history read for its time from both
stores, kept in a small LRU cache.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.history import ContactHistory
from nextbest.live.history import BaseHistory, build_history
from nextbest.live.register import News, apply_news


def utc_now() -> dt.datetime:
    """Current time as naive UTC: the stores' timestamps are naive UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class HistoryCache:
    """The histories a worker decides with; not thread-safe (the runtime serialises use).

    Parameters
    ----------
    config
        Configuration (windows, caps).
    base
        The warehouse's part, read with the serving state.
    contacts, negatives
        Live rows after ``base``'s marks (as :meth:`ContactGate.reset` returned them).
    load_at
        Reads a history for a decision time before ``base.exact_from`` from both stores.
    size
        Such histories kept.
    """

    def __init__(
        self,
        config: NextbestConfig,
        base: BaseHistory,
        contacts: pd.DataFrame,
        negatives: pd.DataFrame,
        *,
        load_at: Callable[[dt.datetime], ContactHistory],
        size: int = 8,
    ) -> None:
        self.config = config
        self.base = base
        self.load_at = load_at
        self.size = size
        self._main = build_history(config, base, contacts, negatives)
        self._fixed: OrderedDict[dt.datetime, ContactHistory] = OrderedDict()

    def live(self) -> ContactHistory:
        """The history for decisions from the snapshot's as-of on (now included)."""
        return self._main

    def loaded(self, when: dt.datetime | None = None) -> bool:
        """Whether :meth:`at` would answer without reading a store."""
        return when is None or when >= self.base.exact_from or when in self._fixed

    def at(self, when: dt.datetime) -> ContactHistory:
        """The history for decisions at ``when`` (naive UTC)."""
        if when >= self.base.exact_from:
            return self._main
        history = self._fixed.get(when)
        if history is None:
            history = self.load_at(when)
            self._fixed[when] = history
            while len(self._fixed) > self.size:
                self._fixed.popitem(last=False)
        else:
            self._fixed.move_to_end(when)
        return history

    def merge(self, news: News) -> None:
        """Add what other writers committed to every loaded history."""
        for history in self._histories():
            apply_news(history, news)

    def record_negative(self, customer_id: int, ts: dt.datetime, outcome: str) -> None:
        """Add a complaint or unsubscribe to every loaded history."""
        for history in self._histories():
            history.record_negative(np.array([customer_id], dtype=np.int64), ts, outcome)

    def _histories(self) -> list[ContactHistory]:
        return [self._main, *self._fixed.values()]
