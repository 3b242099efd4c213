"""What the service decides with, loaded in one piece.

A :class:`ServingState` is one immutable set of loaded things: configuration,
registry models, the decision engine, the feature snapshot (its customers
prepared for the engine), the warehouse's part of the contact history and the
salutation profiles. :func:`build_state` loads one; the
:class:`~nextbest.serving.runtime.Runtime` swaps a new one in on a refresh.
:func:`preflight` checks a workspace can be served before any worker starts.

The warehouse is only ever read here, in short read-only connections.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.cli import load_scorers
from nextbest.decisioning.documents import Context
from nextbest.decisioning.engine import DecisionEngine, complete_features
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.plans import CustomerPlan, PlanCache, PlanKey
from nextbest.decisioning.prepared import PreparedCustomers
from nextbest.errors import NotFoundError
from nextbest.features.snapshots import read_snapshot
from nextbest.features.store import FeatureStore
from nextbest.live.history import BaseHistory
from nextbest.models.registry import CHAMPION, get_version
from nextbest.serving.connections import warehouse_connection
from nextbest.serving.histories import utc_now
from nextbest.serving.settings import ServeSettings
from nextbest.training.tracking import use_workspace
from nextbest.workspace import Workspace

#: Compiled tree models (native object code), shared by the workers and kept across starts.
COMPILED_DIR = Path("serving") / "compiled"


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
    #: The warehouse's part of the contact history, read with the snapshot.
    base: BaseHistory
    #: Customers' plans for this state's models and features (``None``: every request takes the full path).
    plans: PlanCache | None = None
    #: Customers erased while this state serves: ranked as unknown from then on.
    erased: set[int] = field(default_factory=set)

    def prepared(self, ids: np.ndarray) -> tuple[PreparedCustomers, int]:
        """The prepared rows of ``ids`` (unknown and erased ids get the cold-start row) and how many were unknown."""
        pos = self.features.positions(ids)
        if self.erased:
            pos = np.where(np.isin(ids, np.fromiter(self.erased, dtype=np.int64)), -1, pos)
        unknown = pos < 0
        return self.customers.take(np.where(unknown, self.blank, pos), ids=ids), int(unknown.sum())

    @property
    def blank(self) -> int:
        """Row of :attr:`customers` an unknown id is ranked on."""
        return len(self.customers) - 1

    def plans_of(
        self, keys: Sequence[PlanKey], at: dt.datetime, history: ContactHistory | None = None
    ) -> dict[PlanKey, CustomerPlan | Exception]:
        """The plans of ``keys`` from :attr:`plans`, the missing ones built (one engine call per context).

        With a ``history``, plans are scored at its contact pressure at ``at``, and a kept plan scored at
        another one (the customer was contacted since) is built again. A context the engine rejects (an
        unknown channel) gives the error in place of its plans.
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
        if history is not None and found:
            kept = list(found)
            plans, stale = self.engine.refreshed([found[k] for k in kept], self.customers, at, history)  # type: ignore[misc]
            for i in stale.tolist():
                found[kept[i]] = plans[i]
                self.plans.put(kept[i], plans[i])
        for (channel, event), customer_ids in missing.items():
            ids = np.array(customer_ids, dtype=np.int64)
            try:
                built: list[CustomerPlan | Exception] = list(
                    self.engine.plans(
                        self.prepared(ids)[0], at, Context(channel=channel, event=event), self.profiles, self.plans.reasons,
                        history,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - returned to each request of the context
                built = [exc] * len(ids)
            for cid, plan in zip(customer_ids, built, strict=True):
                found[(cid, channel, event)] = plan
                if isinstance(plan, CustomerPlan):
                    self.plans.put((cid, channel, event), plan)
        return found

    def plan_everyone(self, chunk: int, history: ContactHistory) -> None:
        """Build the plan of every customer of the snapshot (no context), ``chunk`` customers per engine call,
        at the contact pressure ``history`` has now (else a customer contacted lately is planned again on
        their first request).

        Only when they all fit :attr:`plans`: a larger snapshot fills it request by request.
        """
        if self.plans is None or len(self.features) > self.plans.size:
            return
        ids = self.customers.ids[: self.blank]
        now = utc_now()
        for start in range(0, len(ids), chunk):
            self.plans_of([(int(c), None, None) for c in ids[start : start + chunk]], now, history)


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


def load_features(
    ws: Workspace, config: NextbestConfig, lock_timeout_s: float, store_id: str
) -> tuple[FeatureStore, pd.DataFrame, BaseHistory]:
    """The latest feature snapshot, the salutation profiles and the warehouse's contact history.

    Read in one short read-only connection: the service never writes the warehouse.
    """
    with warehouse_connection(ws.warehouse_path, read_only=True, timeout_s=lock_timeout_s) as con:
        as_of, features, offer_history = read_snapshot(con, config)
        # Personal data, used only to greet the customer in the message, never by a model.
        profiles = con.execute("SELECT customer_id, first_name, gender FROM customers").df()
        base = BaseHistory.read(con, config, pd.Timestamp(as_of).to_pydatetime(), store_id)
    return FeatureStore(features, offer_history, as_of), profiles, base


def build_state(settings: ServeSettings, store_id: str) -> ServingState:
    """Load configuration, models, features and the warehouse's history into a new :class:`ServingState`."""
    ws = settings.workspace
    config = ws.config()
    # MLflow resolves `models:/` artifact URIs against its global registry URI.
    use_workspace(ws)
    scorers = load_scorers(ws, config)
    store, profiles, base = load_features(ws, config, settings.lock_timeout_s, store_id)
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
        base=base,
        plans=PlanCache(settings.plan_cache, settings.plan_reasons) if settings.plan_cache > 0 and engine.plannable else None,
    )
    return state


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
    with warehouse_connection(ws.warehouse_path, read_only=True) as con:
        read_snapshot(con, config, customer_ids=[])
