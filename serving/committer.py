"""Group commit: every decision and outcome is durable in the live store before it is answered.

Request handlers hand their rows to :class:`Committer` and wait on the future it
returns. The transactions themselves run in the worker's commit process
(:mod:`nextbest.serving.commit_process`): requests arriving together share one
transaction and one fsync, so durability costs one commit per batch, not per
request, and the contact gate reserves each contact against everything any
worker committed before. The worker itself only pickles rows onto a socket and
reads one answer per transaction, so the commits' Python work does not compete
with ranking for the worker's interpreter lock.

A store that fails is retried with a growing pause until ``retry_s`` has passed
since the batch's first attempt; then the batch's callers get
:class:`~nextbest.live.store.StoreUnavailableError` (HTTP 503 with
``Retry-After``) and :attr:`Committer.healthy` is false (``/readyz`` fails)
until a transaction succeeds again. A commit process that dies fails its
pending callers the same way; :meth:`Committer.restart` starts another. Nothing
is dropped silently: a caller either hears that its rows are committed or that
they may not be.
"""

from __future__ import annotations

import itertools
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.live.history import BaseHistory
from nextbest.live.register import News, Written
from nextbest.live.store import LiveStore, StoreUnavailableError

log = logging.getLogger(__name__)


class Committer:
    """A worker's end of its commit process.

    Parameters
    ----------
    store
        The live store (its URL and writer name go to the commit process).
    on_news
        Called with what other writers committed, before the callers of the same
        transaction hear back (so a re-ranked request sees it). Runs in the reader thread.
    retry_s
        How long a failing store is retried before the callers get a 503.
    gather_s
        How long a transaction waits for more rows once the first has arrived.
    """

    def __init__(
        self,
        store: LiveStore,
        on_news: Callable[[News], None],
        *,
        retry_s: float = 10.0,
        gather_s: float = 0.0,
    ) -> None:
        self.store = store
        self.on_news = on_news
        self.retry_s = retry_s
        self.gather_s = gather_s
        self.healthy = True
        self._tokens = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Committer:
        """Start the commit process (idempotent while it runs)."""
        with self._lock:
            if self.alive:
                return self
            ours, theirs = socket.socketpair()
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "nextbest.serving.commit_process", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                )
            finally:
                theirs.close()
            conn = Connection(ours.detach())
            conn.send(("hello", self.store.url, self.store.writer, self.store.busy_timeout_s, self.retry_s, self.gather_s))
            _, error = conn.recv()
            if error is not None:
                conn.close()
                raise error
            self._conn = conn
            self._stopping = False
            self._reader = threading.Thread(target=self._read, args=(conn,), name="nextbest-commit-answers", daemon=True)
            self._reader.start()
        return self

    @property
    def alive(self) -> bool:
        """Whether the commit process runs."""
        return self._proc is not None and self._proc.poll() is None and self._conn is not None

    def restart(self) -> None:
        """Start a new commit process after the last one died (its callers got 503s); :meth:`reset` must follow."""
        self._fail_pending(StoreUnavailableError("the commit process stopped; retry"))
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then stop the commit process."""
        self._stopping = True
        with self._lock:
            conn = self._conn
        if conn is not None:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        if self._proc is not None:
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout_s)
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------ producers
    def submit(self, decisions: list[dict[str, Any]] = (), outcomes: list[dict[str, Any]] = ()) -> Future[Written]:  # type: ignore[assignment]
        """Queue rows for the next transaction; the future gives its :class:`Written` (this submission's part).

        Never blocks on the store: the commit process drains its socket at once.
        """
        return self._ask("write", list(decisions), list(outcomes))

    def reset(self, config: NextbestConfig, base: BaseHistory, timeout_s: float = 60.0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Give the commit process a new contact gate on ``base`` (between two transactions).

        Returns the live rows after ``base``'s marks (contacts, negatives), from
        which the worker builds its own histories at the same point.
        """
        return self._ask("reset", config, base).result(timeout_s)  # type: ignore[no-any-return]

    def _ask(self, kind: str, *payload: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._stopping or self._conn is None:
                raise StoreUnavailableError("the service is stopping; retry on another worker")
            token = next(self._tokens)
            self._pending[token] = future
            try:
                self._conn.send((kind, token, *payload))
            except OSError as exc:
                del self._pending[token]
                self.healthy = False
                raise StoreUnavailableError(f"the commit process is gone: {exc}; retry") from exc
        return future

    # ------------------------------------------------------------------ answers
    def _read(self, conn: Connection) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                if not self._stopping:
                    log.error("the commit process stopped; requests get 503 until it is restarted")
                    self.healthy = False
                self._fail_pending(StoreUnavailableError("the commit process stopped; retry"))
                return
            if message[0] == "reset":
                _, token, frames, error = message
                future = self._take(token)
                if error is not None:
                    self.healthy = not isinstance(error, StoreUnavailableError)
                    future.set_exception(error)
                else:
                    self.healthy = True
                    future.set_result(frames)
                continue
            _, parts, news, healthy = message
            self.healthy = healthy
            if news:
                try:
                    self.on_news(news)
                except Exception:  # noqa: BLE001 - the rows are committed; the next poll catches up
                    log.exception("applying other workers' contacts failed")
            for token, written, error in parts:
                future = self._take(token)
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(written)

    def _take(self, token: int) -> Future[Any]:
        with self._lock:
            return self._pending.pop(token)

    def _fail_pending(self, error: Exception) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    @property
    def pid(self) -> int | None:
        """The commit process's id (tests, logs)."""
        return self._proc.pid if self._proc is not None else None

