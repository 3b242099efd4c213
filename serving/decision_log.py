"""Batched, non-blocking logging of decisions to the warehouse.

A request thread hands its decision rows to :meth:`DecisionWriter.submit` and
returns at once; one background thread gathers what arrived during the last
``interval_s`` (or sooner, once ``max_rows`` are waiting) and writes it in one
short-lived transaction. That keeps the warehouse lock free between batches for
the CLI and the simulator, and keeps DuckDB's per-commit cost off the response
path.

Nothing is dropped on a lock conflict: the batch stays queued and is retried.
:meth:`DecisionWriter.flush` blocks until everything submitted before the call is
committed, which ``/feedback`` uses for a decision still in the queue and the
service's shutdown hook uses so a graceful stop loses no decision.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from collections.abc import Sequence

import duckdb
import pandas as pd

from nextbest.decisioning.documents import RankResponse
from nextbest.decisioning.log import decision_frame, decision_row

from nextbest.serving.connections import WarehouseBusyError, warehouse_connection
from nextbest.warehouse.schema import DECISIONS

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = DECISIONS.column_names


class DecisionWriter:
    """Background writer of ``decisions`` rows.

    Parameters
    ----------
    warehouse_path
        The DuckDB warehouse file.
    interval_s
        Longest time a submitted row waits before its batch is written.
    max_rows
        Queued rows that trigger a write before ``interval_s`` has passed.
    lock_timeout_s
        How long one write attempt waits for another process's lock before the
        batch is put back and retried on the next round.
    """

    def __init__(
        self, warehouse_path: Path, *, interval_s: float = 0.2, max_rows: int = 5000, lock_timeout_s: float = 10.0
    ) -> None:
        self.warehouse_path = Path(warehouse_path)
        self.interval_s = interval_s
        self.max_rows = max_rows
        self.lock_timeout_s = lock_timeout_s
        self._cond = threading.Condition()
        # Frames, or rows of documents (decision_row tuples) the writer thread frames (off the request path).
        self._queue: list[pd.DataFrame | list[tuple[object, ...]]] = []
        self._queued_rows = 0
        self._pending_ids: set[str] = set()
        self._submitted = 0  # batches handed in
        self._done = 0  # batches committed (or given up on)
        self._flush_requested = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.rows_written = 0
        self.rows_failed = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> DecisionWriter:
        """Start the background thread (idempotent); returns ``self``."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nextbest-decision-writer", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything still queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("decision writer did not finish within %.0f s; %d rows unwritten", timeout_s, self._queued_rows)

    # ------------------------------------------------------------------ producer side
    def submit(self, rows: pd.DataFrame) -> None:
        """Queue decision rows (columns of the ``decisions`` table); never blocks on I/O."""
        if rows.empty:
            return
        missing = [c for c in ("decision_id", "customer_id", "ts") if c not in rows.columns]
        if missing:
            raise ValueError(f"decision rows lack required column(s) {missing}")
        frame = rows.reindex(columns=list(COLUMNS))
        with self._cond:
            if self._stopping:
                raise RuntimeError("decision writer is closed")
            self._queue.append(frame)
            self._queued_rows += len(frame)
            self._pending_ids.update(frame["decision_id"].astype(str))
            self._submitted += 1
            if self._queued_rows >= self.max_rows:
                self._cond.notify_all()

    def submit_documents(self, documents: Sequence[RankResponse]) -> None:
        """Queue the decisions of ranked documents (their rank-1 actions); never blocks on I/O.

        Only each document's row is kept, as a tuple: a queue of documents (a
        score of objects each) outlives the garbage collector's young
        generations and makes its full collections, which stall every request,
        frequent and slow. The frame is built in the writer thread, once per write.
        """
        if not documents:
            return
        rows = [decision_row(d) for d in documents]
        with self._cond:
            if self._stopping:
                raise RuntimeError("decision writer is closed")
            self._queue.append(rows)
            self._queued_rows += len(rows)
            self._pending_ids.update(d.decision_id for d in documents)
            self._submitted += 1
            if self._queued_rows >= self.max_rows:
                self._cond.notify_all()

    def is_pending(self, decision_id: str) -> bool:
        """Whether the decision is queued but not yet committed."""
        with self._cond:
            return decision_id in self._pending_ids

    @property
    def queued_rows(self) -> int:
        """Rows waiting to be written."""
        with self._cond:
            return self._queued_rows

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Block until every row submitted before this call is written.

        Returns
        -------
        bool
            False when ``timeout_s`` passed first (e.g. the warehouse stayed locked).
        """
        with self._cond:
            target = self._submitted
            if self._done >= target:
                return True
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout_s)

    # ------------------------------------------------------------------ consumer side
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping or self._flush_requested or self._queued_rows >= self.max_rows,
                    self.interval_s,
                )
                batches, self._queue = self._queue, []
                self._queued_rows = 0
                self._flush_requested = False
                stopping = self._stopping
            if batches:
                self._write(batches, stopping)
            elif stopping:
                return

    def _write(self, batches: list[pd.DataFrame | list[tuple[object, ...]]], stopping: bool) -> None:
        rows = [r for b in batches if not isinstance(b, pd.DataFrame) for r in b]
        frames = [b for b in batches if isinstance(b, pd.DataFrame)]
        if rows:
            frames.append(decision_frame(rows).reindex(columns=list(COLUMNS)))
        frame = pd.concat(frames, ignore_index=True)
        committed = False
        transient_failures = 0
        attempt_deadline = time.monotonic() + (self.lock_timeout_s * 3 if stopping else self.lock_timeout_s)
        while not committed:
            try:
                self._insert(frame)
                committed = True
            except WarehouseBusyError:
                if stopping and time.monotonic() >= attempt_deadline:
                    break
                if not stopping:
                    # Put the batch back so newer rows join it; the next round retries.
                    self._requeue(batches)
                    return
            except duckdb.Error:
                # A connection opened while another thread closes the last handle on the
                # same file can come up without the Python scan functions; reopening fixes it.
                transient_failures += 1
                if transient_failures >= 3:
                    log.exception("could not write %d decision rows; they are dropped", len(frame))
                    break
                time.sleep(0.05 * transient_failures)
        with self._cond:
            if committed:
                self.rows_written += len(frame)
            else:
                self.rows_failed += len(frame)
            self._pending_ids.difference_update(frame["decision_id"].astype(str))
            self._done += len(batches)
            self._cond.notify_all()

    def _requeue(self, batches: list[pd.DataFrame | list[tuple[object, ...]]]) -> None:
        with self._cond:
            self._queue[:0] = batches
            self._queued_rows += sum(len(b) for b in batches)
            if self._stopping:
                self._cond.notify_all()

    def _insert(self, frame: pd.DataFrame) -> None:
        with warehouse_connection(self.warehouse_path, timeout_s=self.lock_timeout_s) as con:
            con.register("decision_batch", frame)
            # A retried batch may have reached the file before its connection failed.
            con.execute("INSERT OR IGNORE INTO decisions BY NAME SELECT * FROM decision_batch")
            con.unregister("decision_batch")
