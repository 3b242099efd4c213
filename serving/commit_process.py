"""The commit process of a service worker: group commits to the live store, off the worker's interpreter.

A worker's event loop, its ranking and its commits would otherwise share one
interpreter lock: every millisecond a transaction spends in Python (the contact
gate, SQLAlchemy, converting rows) is a millisecond no request is parsed or
ranked. So each worker starts one child process (``python -m
nextbest.serving.commit_process FD``) and talks to it over a socket pair
(:class:`multiprocessing.connection.Connection`: pickled messages):

* ``("reset", token, config, base)``: a new contact gate on ``base``; answers the
  live rows after its marks, so the worker builds its histories from the same point;
* ``("write", token, decisions, outcomes)``: rows for the next transaction;
* ``("stop",)``: commit what is queued, then exit.

A reader thread drains the socket into a queue the moment messages arrive (the
worker never blocks on a full socket, even while the store is locked); the main
loop takes everything queued and writes it in one transaction
(:func:`nextbest.live.register.write`): one fsync for all of it. After the
commit, one message answers every write of the transaction, with what other
writers committed meanwhile (``News``) and whether the store is healthy.

The process exits when the worker's end of the socket closes (the worker
stopped or died): what it already took is committed first.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from nextbest.live.register import ContactGate, Written, write
from nextbest.live.store import LiveStore, StoreUnavailableError

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    decisions: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    # (token, slice of decisions, slice of outcomes) per write message
    waiters: list[tuple[int, slice, slice]] = field(default_factory=list)

    def add(self, token: int, decisions: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> None:
        d0, o0 = len(self.decisions), len(self.outcomes)
        self.decisions.extend(decisions)
        self.outcomes.extend(outcomes)
        self.waiters.append((token, slice(d0, len(self.decisions)), slice(o0, len(self.outcomes))))


class CommitLoop:
    """The process's work: one transaction at a time over everything queued.

    Parameters
    ----------
    conn
        The process's end of the socket pair.
    store
        The live store (this worker's writer name).
    retry_s
        How long a failing store is retried before the writes get :class:`StoreUnavailableError`.
    gather_s
        How long a transaction waits for more rows once the first has arrived.
    """

    def __init__(self, conn: Connection, store: LiveStore, *, retry_s: float, gather_s: float) -> None:
        self.conn = conn
        self.store = store
        self.retry_s = retry_s
        self.gather_s = gather_s
        self.gate: ContactGate | None = None
        self.inbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self.healthy = True
        self._send_lock = threading.Lock()

    def run(self) -> None:
        """Serve until ``stop`` or the worker's end closes."""
        threading.Thread(target=self._read, name="nextbest-commit-reader", daemon=True).start()
        while True:
            first = self.inbox.get()
            if self.gather_s > 0 and first is not None:
                time.sleep(self.gather_s)
            messages = [first]
            while True:
                try:
                    messages.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            batch = _Batch()
            stopping = False
            for message in messages:
                if message is None or message[0] == "stop":
                    stopping = True
                elif message[0] == "write":
                    batch.add(message[1], message[2], message[3])
                elif message[0] == "reset":
                    # Between transactions: rows queued before it are written on the old gate.
                    self._commit(batch)
                    batch = _Batch()
                    self._reset(*message[1:])
            self._commit(batch)
            if stopping:
                return

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                self.inbox.put(None)
                return
            self.inbox.put(message)

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._send_lock:
                self.conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # the worker is gone; what was committed stays committed

    def _reset(self, token: int, config: Any, base: Any) -> None:
        try:
            gate = ContactGate(self.store, config, base)
            with self.store.writing() as con:
                frames = gate.reset(con)
            self.gate = gate
            self.healthy = True
            self._send(("reset", token, frames, None))
        except Exception as exc:  # noqa: BLE001 - handed to the worker
            self.healthy = not isinstance(exc, StoreUnavailableError)
            self._send(("reset", token, None, exc))

    def _commit(self, batch: _Batch) -> None:
        if not batch.waiters:
            return
        if self.gate is None:
            error = StoreUnavailableError("the commit process has no contact gate yet; retry")
            self._send(("written", [(t, None, error) for t, _, _ in batch.waiters], None, self.healthy))
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
                    log.error("live store unavailable for %.0f s; %d writes get 503: %s", self.retry_s, len(batch.waiters), exc)
                    self._send(("written", [(t, None, exc) for t, _, _ in batch.waiters], None, False))
                    return
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
            except Exception as exc:  # noqa: BLE001 - a bug or bad row: the callers get it, nothing is half-written
                log.exception("live store transaction failed")
                self._send(("written", [(t, None, exc) for t, _, _ in batch.waiters], None, self.healthy))
                return
        self.healthy = True
        parts = []
        for token, dslice, oslice in batch.waiters:
            ids = {r["decision_id"] for r in batch.decisions[dslice]}
            parts.append((token, Written(rejected=written.rejected & ids, outcomes=written.outcomes[oslice], news=None), None))
        self._send(("written", parts, written.news or None, True))


def main(argv: list[str] | None = None) -> None:
    """``python -m nextbest.serving.commit_process FD``: serve the worker on socket ``FD``."""
    args = sys.argv[1:] if argv is None else argv
    conn = Connection(int(args[0]))
    hello = conn.recv()  # ("hello", url, writer, busy_timeout_s, retry_s, gather_s)
    _, url, writer, busy_timeout_s, retry_s, gather_s = hello
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(levelname)s] commit process: %(message)s")
    try:
        store = LiveStore(url, writer=writer, busy_timeout_s=busy_timeout_s)
    except Exception as exc:  # noqa: BLE001 - reported to the worker, which keeps retrying
        conn.send(("hello", exc))
        return
    conn.send(("hello", None))
    try:
        CommitLoop(conn, store, retry_s=retry_s, gather_s=gather_s).run()
    finally:
        store.close()


if __name__ == "__main__":
    main()
