"""Everything the service holds in memory, and the operations on it.

A :class:`ServingState` is one immutable set of loaded things: configuration,
registry models, the decision engine, the feature snapshot and the salutation
profiles. :class:`Runtime` owns the current state, the decision writer and the
contact histories; a refresh builds a complete new state off to the side and
swaps one reference, so requests in flight finish on the state they started
with and none is dropped.

Engine calls are serialised by one lock: ranking is CPU-bound (the GIL allows
no parallelism anyway) and it records each decision into the contact history,
which must see the decisions of the previous call. :meth:`Runtime.rank_now`
ranks only when that lock is free and no history needs loading, so the service
can call it on its event loop without ever blocking it.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.documents import Context, RankRequest, RankResponse
from nextbest.decisioning.cli import load_scorers
from nextbest.decisioning.engine import DecisionEngine, complete_features
from nextbest.decisioning.plans import CustomerPlan, PlanCache, PlanKey
from nextbest.decisioning.prepared import PreparedCustomers
from nextbest.errors import NotFoundError
from nextbest.features.snapshots import read_snapshot
from nextbest.features.store import FeatureStore
from nextbest.models.registry import CHAMPION, get_version
from nextbest.serving.connections import warehouse_connection
from nextbest.serving.decision_log import DecisionWriter
from nextbest.serving.feedback import RecordedFeedback, record_feedback
from nextbest.serving.histories import HistoryCache, utc_now
from nextbest.serving.metrics import service_metrics
from nextbest.serving.schemas import FeedbackBody, FeedbackReceipt, RankBatchBody, RefreshReport
from nextbest.serving.settings import ServeSettings
from nextbest.training.tracking import use_workspace
from nextbest.warehouse.db import ensure_schema
from nextbest.workspace import Workspace

log = logging.getLogger(__name__)

#: Touched after a refresh so the other workers of the server refresh too.
REFRESH_STAMP = Path("serving") / "refresh.stamp"
#: Compiled tree models (native object code), shared by the workers and kept across starts.
COMPILED_DIR = Path("serving") / "compiled"
NEGATIVE_OUTCOMES: frozenset[str] = frozenset({"complaint", "unsubscribe"})


@dataclass(frozen=True)
class ServingState:
    """One consistent set of what the service decides with."""

    config: NextbestConfig
    engine: DecisionEngine
    features: FeatureStore
    profiles: pd.DataFrame
    model_versions: dict[str, str]
    loaded_at: dt.datetime
    #: Every customer of ``features`` prepared for ``engine``, then one all-null row for unknown ids.
    customers: PreparedCustomers
    #: Customers' plans for this state's models and features (``None``: every request takes the full path).
    plans: PlanCache | None = None

    def prepared(self, ids: np.ndarray) -> tuple[PreparedCustomers, int]:
        """The prepared rows of ``ids`` (unknown ids get the cold-start row) and how many were unknown."""
        pos = self.features.positions(ids)
        unknown = pos < 0
        return self.customers.take(np.where(unknown, self.blank, pos), ids=ids), int(unknown.sum())

    @property
    def blank(self) -> int:
        """Row of :attr:`customers` an unknown id is ranked on."""
        return len(self.customers) - 1

    def plans_of(self, keys: Sequence[PlanKey], at: dt.datetime) -> dict[PlanKey, CustomerPlan | Exception]:
        """The plans of ``keys`` from :attr:`plans`, the missing ones built (one engine call per context).

        A context the engine rejects (an unknown channel) gives the error in place of its plans.
        """
        assert self.plans is not None
        found: dict[PlanKey, CustomerPlan | Exception] = {}
        missing: dict[tuple[str | None, str | None], list[int]] = {}
        for key in keys:
            if key in found:
                continue
            plan = self.plans.get(key)
            if plan is None:
                missing.setdefault(key[1:], []).append(key[0])
            else:
                found[key] = plan
        for (channel, event), customer_ids in missing.items():
            ids = np.array(customer_ids, dtype=np.int64)
            try:
                built: list[CustomerPlan | Exception] = list(
                    self.engine.plans(
                        self.prepared(ids)[0], at, Context(channel=channel, event=event), self.profiles, self.plans.reasons
                    )
                )
            except Exception as exc:  # noqa: BLE001 - returned to each request of the context
                built = [exc] * len(ids)
            for cid, plan in zip(customer_ids, built, strict=True):
                found[(cid, channel, event)] = plan
                if isinstance(plan, CustomerPlan):
                    self.plans.put((cid, channel, event), plan)
        return found

    def plan_everyone(self, chunk: int) -> None:
        """Build the plan of every customer of the snapshot (no context), ``chunk`` customers per engine call.

        Only when they all fit :attr:`plans`: a larger snapshot fills it request by request.
        """
        if self.plans is None or len(self.features) > self.plans.size:
            return
        ids = self.customers.ids[: self.blank]
        now = dt.datetime.now()
        for start in range(0, len(ids), chunk):
            self.plans_of([(int(c), None, None) for c in ids[start : start + chunk]], now)


def prepare_snapshot(engine: DecisionEngine, store: FeatureStore, reason_memo: int = 0) -> PreparedCustomers:
    """Every customer of ``store`` prepared for ``engine``, plus a last, all-null row.

    Done once per loaded state, so a request only takes rows. The null row is
    what an unknown id is ranked on (a cold start), prepared on its own: mixed
    into a frame with known customers it would turn every column into objects.
    ``reason_memo`` model reason codes are remembered (the snapshot and models
    are fixed for the state's life).
    """
    columns = store.columns[1:]
    known = engine.prepare(store.frame, store.history_frame).encode_all()
    null_row = complete_features(store.frame.iloc[:0], np.array([-1], dtype=np.int64), columns)
    blank = engine.prepare(null_row, store.history_frame.iloc[:0]).encode_all()

    def frame_of(ids: np.ndarray) -> pd.DataFrame:
        return complete_features(store.get(ids), ids, columns)

    return PreparedCustomers.concat([known, blank], frame_of).remember_reasons(reason_memo)


def load_features(ws: Workspace, config: NextbestConfig, lock_timeout_s: float) -> tuple[FeatureStore, pd.DataFrame]:
    """The latest feature snapshot and the salutation profiles, read in one short connection."""
    with warehouse_connection(ws.warehouse_path, timeout_s=lock_timeout_s) as con:
        as_of, features, offer_history = read_snapshot(con, config)
        # Personal data, used only to greet the customer in the message, never by a model.
        profiles = con.execute("SELECT customer_id, first_name, gender FROM customers").df()
    return FeatureStore(features, offer_history, as_of), profiles


def build_state(settings: ServeSettings) -> ServingState:
    """Load configuration, models and features into a new :class:`ServingState`."""
    ws = settings.workspace
    config = ws.config()
    # MLflow resolves `models:/` artifact URIs against its global registry URI.
    use_workspace(ws)
    scorers = load_scorers(ws, config)
    store, profiles = load_features(ws, config, settings.lock_timeout_s)
    engine = DecisionEngine(config, scorers)
    customers = prepare_snapshot(engine, store, settings.reason_memo)
    if settings.compiled_trees:
        for alias, matrix in engine.matrix.items():
            # Checked against LightGBM on the snapshot's own rows; on any mismatch LightGBM stays.
            matrix.compile(customers.encoded(alias), ws.artifacts_dir / COMPILED_DIR)
    state = ServingState(
        config=config,
        engine=engine,
        features=store,
        profiles=profiles,
        model_versions={alias: s.model_version for alias, s in scorers.items()},
        loaded_at=dt.datetime.now(dt.timezone.utc),
        customers=customers,
        plans=PlanCache(settings.plan_cache, settings.plan_reasons) if settings.plan_cache > 0 and engine.plannable else None,
    )
    state.plan_everyone(settings.batch_chunk)
    return state


def _count_plans(cached: int, built: int) -> None:
    metrics = service_metrics()
    if cached:
        metrics.plans.labels("cached").inc(cached)
    if built:
        metrics.plans.labels("built").inc(built)


def preflight(ws: Workspace) -> None:
    """Check, before any worker starts, that the workspace can be served.

    Raises
    ------
    NotFoundError
        No champion model (run ``nextbest train``) or no feature snapshot
        (run ``nextbest features build``).
    """
    config = ws.config()
    if get_version(ws.tracking_uri, CHAMPION) is None:
        raise NotFoundError(f"no champion model registered in {ws.tracking_uri} — run `nextbest train`")
    with warehouse_connection(ws.warehouse_path) as con:
        read_snapshot(con, config, customer_ids=[])


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
        with warehouse_connection(self.workspace.warehouse_path, timeout_s=settings.lock_timeout_s) as con:
            ensure_schema(con)
        self.writer = DecisionWriter(
            self.workspace.warehouse_path,
            interval_s=settings.writer_interval_ms / 1000,
            max_rows=settings.writer_max_rows,
            lock_timeout_s=settings.lock_timeout_s,
        ).start()
        # Re-entrant: rank_now holds it around rank_requests, which takes it again.
        self._engine_lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._state = build_state(settings)
        self._count_built(self._state)
        self._histories = self._new_histories(self._state.config)
        self._stamp = self.workspace.artifacts_dir / REFRESH_STAMP
        self._stamp_seen = self._stamp_mtime()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch_stamp, name="nextbest-refresh-watch", daemon=True)
        self._watcher.start()
        settle_heap()

    @property
    def state(self) -> ServingState:
        """The state new requests use."""
        return self._state

    @property
    def ready(self) -> bool:
        """Models and features are loaded and the writer is alive."""
        return self._state is not None and not self._stop.is_set()

    def close(self) -> None:
        """Stop watching and write every queued decision."""
        self._stop.set()
        self.writer.close(timeout_s=max(30.0, 3 * self.settings.lock_timeout_s))

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

        Each request is ranked as a batch of one, so a customer's decision sees the
        contacts of every request before it, as consecutive ``nextbest rank`` calls do.
        """
        out: list[RankResponse | Exception] = []
        with self._engine_lock:
            state = self._state
            memo = state.customers.memo
            seen = (memo.hits, memo.misses) if memo is not None else (0, 0)
            held = state.engine.reasons_from_plans
            keys = [(r.customer_id, r.context.channel, r.context.event) for r in requests]
            cache = state.plans
            assert cache is not None
            looked = (cache.hits, cache.misses)
            plans = state.plans_of(keys, now)
            _count_plans(cache.hits - looked[0], cache.misses - looked[1])
            live = self._histories.live()[0] if any(r.at is None for r in requests) else None
            for r, key in zip(requests, keys, strict=True):
                plan = plans[key]
                if isinstance(plan, Exception):
                    out.append(plan)
                    continue
                try:
                    at = to_warehouse_time(r.at) if r.at is not None else now
                    history = live if r.at is None else self._histories.at(at)
                    assert history is not None
                    out.append(state.engine.rank_planned(plan, state.customers, at, r.top_k, r.seed, history=history))
                except Exception as exc:  # noqa: BLE001 - returned to the request's caller
                    log.exception("ranking failed")
                    out.append(exc)
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
        """Rank ``body.customer_ids`` in chunks of ``settings.batch_chunk``, in request order."""
        at = to_warehouse_time(body.context.timestamp) if body.context.timestamp else utc_now()
        context = Context(channel=body.context.channel, event=body.context.event)
        ids = np.asarray(body.customer_ids, dtype=np.int64)
        chunk = self.settings.batch_chunk
        docs: list[RankResponse] = []
        for start in range(0, len(ids), chunk):
            docs.extend(
                self._rank(ids[start : start + chunk], at, context, body.top_k, body.seed, False,
                           explicit_time=body.context.timestamp is not None)
            )
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
            history = self._histories.at(at) if explicit_time else self._histories.live()[0]
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
        """Queue ``docs`` for the decision log and count them (and their reason codes' sources)."""
        self.writer.submit_documents(docs)
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
    def feedback(self, body: FeedbackBody) -> FeedbackReceipt:
        """Store an outcome durably; complaints and unsubscribes suppress at once."""
        ts = to_warehouse_time(body.timestamp)

        def record() -> RecordedFeedback:
            return record_feedback(
                self.workspace.warehouse_path,
                decision_id=body.decision_id,
                outcome=body.outcome,
                ts=ts,
                revenue=body.revenue,
                writer=self.writer,
                lock_timeout_s=self.settings.lock_timeout_s,
            )

        try:
            recorded = record()
        except NotFoundError:
            # Another worker of this server may still hold the decision in its queue:
            # look again once its writer has had a round.
            time.sleep(1.5 * self.settings.writer_interval_ms / 1000)
            recorded = record()
        if recorded.created and body.outcome in NEGATIVE_OUTCOMES:
            with self._engine_lock:
                self._histories.record_negative(recorded.customer_id, ts, body.outcome)
        service_metrics().feedback.labels(body.outcome, str(recorded.created).lower()).inc()
        return FeedbackReceipt(decision_id=body.decision_id, outcome=body.outcome, duplicate=not recorded.created)

    # ------------------------------------------------------------------ refresh
    def refresh(self, *, announce: bool = True) -> RefreshReport:
        """Load the registry's current models (and the latest features) and swap them in.

        Requests keep being served from the old state while the new one loads.
        ``announce`` touches the refresh stamp so the server's other workers follow.
        """
        with self._refresh_lock:
            old = self._state
            try:
                new = build_state(self.settings)
            except Exception:
                service_metrics().refreshes.labels("failed").inc()
                raise
            self._count_built(new)
            with self._engine_lock:
                self._state = new
                if new.config != old.config:
                    self._histories = self._new_histories(new.config)
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

    def _new_histories(self, config: NextbestConfig) -> HistoryCache:
        return HistoryCache(
            self.workspace.warehouse_path, config, flush=self.writer.flush, lock_timeout_s=self.settings.lock_timeout_s
        )

    def _stamp_mtime(self) -> int:
        try:
            return self._stamp.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _watch_stamp(self) -> None:
        while not self._stop.wait(1.0):
            seen = self._stamp_mtime()
            if seen != self._stamp_seen:
                self._stamp_seen = seen
                try:
                    self.refresh(announce=False)
                except Exception:
                    log.exception("refresh announced by another worker failed; still serving the previous models")


