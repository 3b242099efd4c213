"""Everything the service holds in memory, and the operations on it.

:class:`Runtime` owns the current :class:`~nextbest.serving.state.ServingState`
(configuration, models, engine, feature snapshot), the decision writer and the
contact histories; a refresh builds a complete new state off to the side and
swaps one reference, so requests in flight finish on the state they started
with and none is dropped.

Engine calls are serialised by one lock: ranking is CPU-bound (the GIL allows
no parallelism anyway) and it records each decision into the contact history,
which must see the decisions of the previous call. :meth:`Runtime.rank_now`
ranks only when that lock is free and no history needs loading, so the service
can call it on its event loop without ever blocking it.

Every decision and outcome goes to the live store through the worker's
:class:`~nextbest.serving.committer.Committer`; the service answers once the
commit is done (:meth:`Runtime.confirm`). The warehouse is only ever read, when
a serving state loads.
"""

from __future__ import annotations

import datetime as dt
import dataclasses
import gc
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from nextbest.decisioning.documents import Context, RankRequest, RankResponse
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.log import decision_row
from nextbest.errors import NotFoundError
from nextbest.live.history import BaseHistory, build_history
from nextbest.live.register import News, Written, decision_dict
from nextbest.live.store import DECISION_COLUMNS, NEGATIVE_OUTCOMES, LiveStore, StoreUnavailableError
from nextbest.serving.committer import Committer
from nextbest.serving.connections import warehouse_connection
from nextbest.serving.histories import HistoryCache, utc_now
from nextbest.serving.metrics import service_metrics
from nextbest.serving.schemas import FeedbackBody, FeedbackReceipt, RankBatchBody, RefreshReport
from nextbest.serving.settings import ServeSettings
from nextbest.serving.state import ServingState, build_state

log = logging.getLogger(__name__)

#: Touched after a refresh so the other workers of the server refresh too.
REFRESH_STAMP = Path("serving") / "refresh.stamp"
#: How often a decision the contact gate refused is ranked again before the request gets a 503.
RERANKS = 3


class ContactConflictError(StoreUnavailableError):
    """Decisions kept losing their contact reservation to other workers; retry the request."""

    def __init__(self, n: int) -> None:
        super().__init__(f"{n} decision(s) lost their contact reservation to other workers {RERANKS + 1} times; retry")


def _count_plans(cached: int, built: int) -> None:
    metrics = service_metrics()
    if cached:
        metrics.plans.labels("cached").inc(cached)
    if built:
        metrics.plans.labels("built").inc(built)


def occurrences(ids: np.ndarray) -> np.ndarray:
    """For each id, how many times it appeared before in ``ids`` (0 for a first occurrence)."""
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(first)
    out = np.empty(len(ids), dtype=np.int64)
    out[order] = np.arange(len(ids)) - np.repeat(starts, np.diff(np.append(starts, len(ids))))
    return out


def settle_heap(*, thaw: bool = False) -> None:
    """Move everything loaded so far out of the garbage collector's sight.

    A worker holds ~400k long-lived objects (libraries, models, the feature
    snapshot); a full collection walks them all and stalls every request for
    ~0.3 s, which the cyclic collector does every few seconds under load. Frozen
    objects are never scanned, so full collections only walk what requests made.
    ``thaw`` first returns frozen objects to the collector, so a replaced state's
    reference cycles are freed (one full collection, after a refresh).
    """
    if thaw:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def to_warehouse_time(ts: dt.datetime) -> dt.datetime:
    """Naive UTC, the warehouse's convention; a naive ``ts`` is taken as UTC already."""
    return ts.astimezone(dt.timezone.utc).replace(tzinfo=None) if ts.tzinfo is not None else ts


class Runtime:
    """The service's state, writer and histories; see the module docstring.

    Parameters
    ----------
    settings
        Validated settings.

    Raises
    ------
    NotFoundError
        When no champion or no feature snapshot exists.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.workspace = settings.workspace
        self.store = LiveStore.for_workspace(
            self.workspace, writer=f"serve-{os.getpid()}-{uuid.uuid4().hex[:6]}", busy_timeout_s=settings.lock_timeout_s
        )
        # Re-entrant: rank_now holds it around rank_requests, which takes it again.
        self._engine_lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._tickets: dict[str, Future[Written]] = {}
        self._erased: set[int] = set()
        self._state = build_state(settings, self.store.store_id)
        self.committer = Committer(
            self.store, self._apply_news, retry_s=settings.lock_timeout_s, gather_s=settings.commit_gather_ms / 1000,
        ).start()
        self._histories = self._reset_histories(self._state)
        self._state.plan_everyone(settings.batch_chunk, self._histories.live())
        self._count_built(self._state)
        self._stamp = self.workspace.artifacts_dir / REFRESH_STAMP
        self._stamp_seen = self._stamp_mtime()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="nextbest-refresh-watch", daemon=True)
        self._watcher.start()
        settle_heap()

    @property
    def state(self) -> ServingState:
        """The state new requests use."""
        return self._state

    @property
    def ready(self) -> bool:
        """Models and features are loaded and the live store takes commits."""
        return self._state is not None and not self._stop.is_set() and self.committer.healthy

    def close(self) -> None:
        """Stop watching and commit everything queued."""
        self._stop.set()
        self.committer.close(timeout_s=max(30.0, 3 * self.settings.lock_timeout_s))
        self.store.close()

    # ------------------------------------------------------------------ commits
    def confirm(self, doc: RankResponse, timeout_s: float | None = None) -> bool:
        """Wait until ``doc``'s decision is committed; False when the contact gate refused it.

        Blocking; the service's event loop awaits :meth:`ticket` instead.
        """
        ticket = self.ticket(doc)
        if ticket is None:
            return True
        written = ticket.result(timeout_s if timeout_s is not None else 3 * self.settings.lock_timeout_s)
        return doc.decision_id not in written.rejected

    def ticket(self, doc: RankResponse) -> Future[Written] | None:
        """The commit of ``doc``'s decision (``None`` once taken: each decision is confirmed once)."""
        return self._tickets.pop(doc.decision_id, None)

    def _apply_news(self, news: News) -> None:
        """What other writers committed: into the worker's histories; erasures dropped at once."""
        with self._engine_lock:
            self._histories.merge(news)
        if news.erased:
            self.erase(news.erased)

    def erase(self, customer_ids: Sequence[int]) -> None:
        """Drop erased customers' cached features, plans, profile and history; they are cold starts from now on."""
        fresh = {int(c) for c in customer_ids} - self._erased
        if not fresh:
            return
        with self._engine_lock:
            self._erased |= fresh
            state = self._state
            state.erased.update(fresh)
            if state.plans is not None:
                for cid in fresh:
                    state.plans.drop(cid)
            self._state = dataclasses.replace(
                state, profiles=state.profiles[~state.profiles["customer_id"].isin(list(fresh))].reset_index(drop=True)
            )
        # Called with the commit process's answer, which the reset would wait for: in a thread of its own.
        threading.Thread(target=self._forget_histories, name="nextbest-erase", daemon=True).start()
        log.info("dropped %d erased customer(s) from the serving state", len(fresh))

    def _forget_histories(self) -> None:
        """Rebuild the histories without the erased customers' rows."""
        try:
            with self._refresh_lock:
                histories = self._reset_histories(self._state)
                with self._engine_lock:
                    self._histories = histories
        except Exception:  # noqa: BLE001 - the watcher's next poll restarts a lost commit process
            log.exception("rebuilding the histories after an erasure failed")

    def _reset_histories(self, state: ServingState) -> HistoryCache:
        """Rebuild the gate and the worker's histories from ``state``'s base and the live store, at one point."""
        base = state.base.without(self._erased)
        contacts, negatives = self.committer.reset(state.config, base)
        return HistoryCache(state.config, base, contacts, negatives, load_at=self._load_at)

    def _load_at(self, when: dt.datetime) -> ContactHistory:
        """A history for decisions at ``when``, before the snapshot: read from both stores."""
        config = self._state.config
        with warehouse_connection(self.workspace.warehouse_path, read_only=True, timeout_s=self.settings.lock_timeout_s) as con:
            base = BaseHistory.read(con, config, when, self.store.store_id).without(self._erased)
        with self.store.reading() as con:
            contacts = self.store.contacts_after(con, base.marks.get("decisions", 0), base.start)
            negatives = self.store.negatives_after(con, base.marks.get("outcomes", 0))
        return build_history(config, base, contacts, negatives)

    # ------------------------------------------------------------------ ranking
    def rank_requests(self, requests: Sequence[RankRequest]) -> list[RankResponse | Exception]:
        """Rank independent requests together (the micro-batcher's function).

        Requests sharing time, context and seed go through one engine call (with
        the largest ``top_k`` of the group, cut per request); a repeated customer
        goes into a later call, since a batch holds one row per customer. Actions
        always carry their reason codes; ``suppressed`` only when the request
        asks to ``explain``.
        """
        now = utc_now()
        out: list[RankResponse | Exception] = [NotFoundError("not ranked")] * len(requests)
        # Without a list of suppressed candidates, a request is ranked from its customer's plan.
        planned = [i for i, r in enumerate(requests) if not r.explain] if self._state.plans is not None else []
        if planned:
            for i, result in zip(planned, self._rank_planned([requests[i] for i in planned], now), strict=True):
                out[i] = result
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, r in enumerate(requests):
            if planned and not r.explain:
                continue
            at = to_warehouse_time(r.at) if r.at is not None else now
            groups.setdefault((at, r.at is not None, r.context, r.seed), []).append(i)
        for (at, explicit, context, seed), members in groups.items():
            ids = np.array([requests[i].customer_id for i in members], dtype=np.int64)
            top_k = max(requests[i].top_k for i in members)
            try:
                # Reasons always; suppressed candidates (dozens of entries each) only if someone asked.
                listed = any(requests[i].explain for i in members)
                docs = self._rank(ids, at, context, top_k, seed, True, explicit_time=explicit, suppressed=listed)
            except Exception as exc:  # noqa: BLE001 - returned to each caller of the group
                log.exception("ranking failed")
                for i in members:
                    out[i] = exc
                continue
            for i, doc in zip(members, docs, strict=True):
                update: dict[str, object] = {}
                if len(doc.actions) > requests[i].top_k:
                    update["actions"] = doc.actions[: requests[i].top_k]
                if not requests[i].explain:
                    update["suppressed"] = None
                out[i] = doc.model_copy(update=update) if update else doc
        return out

    def _rank_planned(self, requests: Sequence[RankRequest], now: dt.datetime) -> list[RankResponse | Exception]:
        """Rank ``requests`` one after the other from their customers' plans (built together where missing).

        A customer's decision sees the contacts of every request before it, as
        consecutive ``nextbest rank`` calls do.
        """
        out: list[RankResponse | Exception] = [NotFoundError("not ranked")] * len(requests)
        with self._engine_lock:
            state = self._state
            memo = state.customers.memo
            seen = (memo.hits, memo.misses) if memo is not None else (0, 0)
            held = state.engine.reasons_from_plans
            keys = [(r.customer_id, r.context.channel, r.context.event) for r in requests]
            cache = state.plans
            assert cache is not None
            looked = (cache.hits, cache.misses)
            live = self._histories.live() if any(r.at is None for r in requests) else None
            plans = state.plans_of(keys, now, live)
            _count_plans(cache.hits - looked[0], cache.misses - looked[1])
            # Runs of requests "now" for distinct customers are ranked together (the documents are
            # those of one request after the other); a replay at its own time, or a customer's
            # second request, starts a new run.
            run: list[int] = []

            def flush() -> None:
                if not run:
                    return
                try:
                    docs = state.engine.rank_planned_many(
                        [plans[keys[i]] for i in run], state.customers, now, [requests[i].top_k for i in run],
                        [requests[i].seed for i in run], history=live,
                    )
                except Exception as exc:  # noqa: BLE001 - returned to the requests' callers
                    log.exception("ranking failed")
                    docs = [exc] * len(run)
                for i, doc in zip(run, docs, strict=True):
                    out[i] = doc
                run.clear()

            for i, (r, key) in enumerate(zip(requests, keys, strict=True)):
                plan = plans[key]
                if isinstance(plan, Exception):
                    out[i] = plan
                    continue
                if r.at is None:
                    if any(requests[j].customer_id == r.customer_id for j in run):
                        flush()
                    run.append(i)
                    continue
                flush()
                try:
                    at = to_warehouse_time(r.at)
                    out[i] = state.engine.rank_planned(plan, state.customers, at, r.top_k, r.seed, history=self._histories.at(at))
                except Exception as exc:  # noqa: BLE001 - returned to the request's caller
                    log.exception("ranking failed")
                    out[i] = exc
            flush()
            hits, misses = (memo.hits - seen[0], memo.misses - seen[1]) if memo is not None else (0, 0)
            held = state.engine.reasons_from_plans - held
        ranked = [(d, plans[k]) for d, k in zip(out, keys, strict=True) if isinstance(d, RankResponse)]
        unknown = sum(plan.origin == state.blank for _, plan in ranked)  # type: ignore[union-attr]
        self._logged([d for d, _ in ranked], hits, misses, unknown, held)  # type: ignore[misc]
        return out

    def rank_now(self, requests: Sequence[RankRequest]) -> list[RankResponse | Exception] | None:
        """:meth:`rank_requests`, or ``None`` when it would wait for the engine lock or a warehouse read.

        Safe on the event loop: it never blocks (the decision writer only queues).
        """
        if not self._engine_lock.acquire(blocking=False):
            return None
        try:
            if not all(self._histories.loaded(to_warehouse_time(r.at) if r.at is not None else None) for r in requests):
                return None
            return self.rank_requests(requests)
        finally:
            self._engine_lock.release()

    def rank_batch(self, body: RankBatchBody) -> list[RankResponse]:
        """Rank ``body.customer_ids`` in chunks of ``settings.batch_chunk``, in request order; returns once committed.

        A decision the contact gate refuses (another worker contacted the customer
        meanwhile) is ranked again with that contact known, up to :data:`RERANKS` times.
        """
        at = to_warehouse_time(body.context.timestamp) if body.context.timestamp else utc_now()
        context = Context(channel=body.context.channel, event=body.context.event)
        ids = np.asarray(body.customer_ids, dtype=np.int64)
        chunk = self.settings.batch_chunk
        docs: list[RankResponse] = []
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            ranked = self._rank(part, at, context, body.top_k, body.seed, False, explicit_time=body.context.timestamp is not None)
            for attempt in range(RERANKS + 1):
                refused = [i for i, d in enumerate(ranked) if not self.confirm(d)]
                if not refused:
                    break
                if attempt == RERANKS:
                    raise ContactConflictError(len(refused))
                again = self._rank(part[refused], at, context, body.top_k, body.seed, False,
                                   explicit_time=body.context.timestamp is not None)
                for i, doc in zip(refused, again, strict=True):
                    ranked[i] = doc
            docs.extend(ranked)
        return docs

    def _rank(
        self,
        ids: np.ndarray,
        at: dt.datetime,
        context: Context,
        top_k: int,
        seed: int | None,
        explain: bool,
        *,
        explicit_time: bool,
        suppressed: bool | None = None,
    ) -> list[RankResponse]:
        """Rank ``ids`` (repeats allowed) and queue their decisions for logging.

        ``explain`` gives reasons (and suppressions, unless ``suppressed`` says otherwise).
        """
        # A batch holds one row per customer: the k-th repeat of an id goes to the k-th round.
        occurrence = occurrences(ids)
        docs: list[RankResponse | None] = [None] * len(ids)
        for round_ in range(int(occurrence.max()) + 1 if len(ids) else 0):
            positions = np.nonzero(occurrence == round_)[0]
            ranked = self._rank_unique(ids[positions], at, context, top_k, seed, explain, explicit_time, suppressed)
            for pos, doc in zip(positions, ranked, strict=True):
                docs[pos] = doc
        return [d for d in docs if d is not None]

    def _rank_unique(
        self, ids: np.ndarray, at: dt.datetime, context: Context, top_k: int, seed: int | None, explain: bool,
        explicit_time: bool, suppressed: bool | None = None,
    ) -> list[RankResponse]:
        state = self._state
        # Cold start: unknown ids get a row of nulls. Unknown consent is no consent,
        # so only non-personal channels survive the rules; the engine flags cold_start.
        customers, n_unknown = state.prepared(ids)
        memo = customers.memo
        with self._engine_lock:
            seen = (memo.hits, memo.misses) if memo is not None else (0, 0)
            history = self._histories.at(at) if explicit_time else self._histories.live()
            docs = state.engine.rank(
                customers, at, context, top_k, seed, history=history, profiles=state.profiles, explain=explain,
                suppressed=suppressed,
            )
            hits, misses = (memo.hits - seen[0], memo.misses - seen[1]) if memo is not None else (0, 0)
        self._logged(docs, hits, misses, n_unknown)
        by_id = {d.customer_id: d for d in docs}
        return [by_id[int(c)] for c in ids]

    def _logged(
        self, docs: Sequence[RankResponse], memo_hits: int, memo_misses: int, unknown: int, planned: int = 0
    ) -> None:
        """Hand ``docs``' decisions to the committer and count them (and their reason codes' sources)."""
        if docs:
            writer = self.store.writer
            rows = [decision_dict(dict(zip(DECISION_COLUMNS, decision_row(d), strict=True)), writer) for d in docs]
            ticket = self.committer.submit(decisions=rows)
            for d in docs:
                self._tickets[d.decision_id] = ticket
        metrics = service_metrics()
        # The memo's hit rate depends on how often the same customers come back: worth watching.
        if planned:
            metrics.reason_codes.labels("plan").inc(planned)
        if memo_hits:
            metrics.reason_codes.labels("memo").inc(memo_hits)
        if memo_misses:
            metrics.reason_codes.labels("computed").inc(memo_misses)
        for arm, n in Counter(d.arm for d in docs).items():
            metrics.decisions.labels(arm).inc(n)
        if unknown:
            metrics.fallbacks.labels("unknown_customer").inc(unknown)

    # ------------------------------------------------------------------ feedback
    def feedback_ticket(self, body: FeedbackBody) -> Future[Written]:
        """Queue an outcome for the next commit (never blocks)."""
        row = {"decision_id": body.decision_id, "ts": to_warehouse_time(body.timestamp), "outcome": body.outcome,
               "revenue": body.revenue}
        return self.committer.submit(outcomes=[row])

    def feedback_done(self, body: FeedbackBody, written: Written) -> FeedbackReceipt:
        """The receipt of a committed outcome; complaints and unsubscribes suppress at once.

        Raises
        ------
        NotFoundError
            The decision was never registered.
        """
        recorded = written.outcomes[0]
        if isinstance(recorded, Exception):
            raise recorded
        if recorded.created and body.outcome in NEGATIVE_OUTCOMES:
            with self._engine_lock:
                self._histories.record_negative(recorded.customer_id, to_warehouse_time(body.timestamp), body.outcome)
        service_metrics().feedback.labels(body.outcome, str(recorded.created).lower()).inc()
        return FeedbackReceipt(decision_id=body.decision_id, outcome=body.outcome, duplicate=not recorded.created)

    def feedback(self, body: FeedbackBody) -> FeedbackReceipt:
        """Store an outcome durably (blocking); see :meth:`feedback_done`."""
        return self.feedback_done(body, self.feedback_ticket(body).result(3 * self.settings.lock_timeout_s))

    # ------------------------------------------------------------------ refresh
    def refresh(self, *, announce: bool = True) -> RefreshReport:
        """Load the registry's current models (and the latest features) and swap them in.

        Requests keep being served from the old state while the new one loads.
        ``announce`` touches the refresh stamp so the server's other workers follow.
        """
        with self._refresh_lock:
            old = self._state
            try:
                new = build_state(self.settings, self.store.store_id)
                new.erased.update(self._erased)
            except Exception:
                service_metrics().refreshes.labels("failed").inc()
                raise
            histories = self._reset_histories(new)
            new.plan_everyone(self.settings.batch_chunk, histories.live())
            self._count_built(new)
            with self._engine_lock:
                self._state = new
                self._histories = histories
            if announce:
                self._stamp.parent.mkdir(parents=True, exist_ok=True)
                self._stamp.touch()
                self._stamp_seen = self._stamp_mtime()
            changed = new.model_versions != old.model_versions
            log.info("serving models %s (was %s)", new.model_versions, old.model_versions)
            del old
            settle_heap(thaw=True)
            service_metrics().refreshes.labels("changed" if changed else "unchanged").inc()
            return RefreshReport(changed=changed, model_versions=new.model_versions, loaded_at=new.loaded_at)

    @staticmethod
    def _count_built(state: ServingState) -> None:
        """Count the plans ``state`` built on loading (every customer's, when they fit the cache)."""
        if state.plans is not None:
            _count_plans(0, state.plans.misses)

    def _stamp_mtime(self) -> int:
        try:
            return self._stamp.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _watch(self) -> None:
        """Every second: follow a refresh announced by another worker, and poll the live store.

        The poll is an empty commit: it brings other writers' contacts and erasures
        into this worker's histories when no request of its own does, and tells
        whether the store is reachable again after a failure (``/readyz``).
        """
        while not self._stop.wait(1.0):
            seen = self._stamp_mtime()
            if seen != self._stamp_seen:
                self._stamp_seen = seen
                try:
                    self.refresh(announce=False)
                except Exception:
                    log.exception("refresh announced by another worker failed; still serving the previous models")
            try:
                if not self.committer.alive:
                    # Its callers got 503s; a new one starts from a fresh gate, and so do the histories.
                    with self._refresh_lock:
                        self.committer.restart()
                        histories = self._reset_histories(self._state)
                        with self._engine_lock:
                            self._histories = histories
                    log.warning("commit process restarted")
                self.committer.submit().result(3 * self.settings.lock_timeout_s)
            except Exception as exc:  # noqa: BLE001 - logged; /readyz reports it
                log.warning("live store poll failed: %s", exc)
