"""The closed loop: decide, let the world answer, record, rebuild features, retrain.

>>> run = simulate(Workspace.resolve("workspace"), SimulationOptions(days=30, policies=("champion", "rules")))
>>> [r.as_dict() for r in run.results]                              # doctest: +SKIP

Each policy runs on its own copy of the starting world (same seed, same latent
state) and of the workspace (:mod:`.replicas`). Every simulated day ``d``:

1. outcomes whose time has come are recorded (feedback code of the service);
2. on feature days, a snapshot as of midnight is built and stored (and the
   service, with ``--via-server``, reloads it);
3. the day's audience (:mod:`.audience`) is ranked at ``decision_hour`` through
   the decision engine, in process or over HTTP, and the decisions are logged;
4. the world draws the outcomes of the decisions (and, on the same draws, of the
   same decisions left unsent, for the accounting) and changes its customers;
5. the world's organic day happens and is appended to the warehouse;
6. on retraining days, a challenger is trained on the policy's own log and
   promoted only if it passes the promotion gate.

The world's draws are keyed by (seed, stream, day, customer), so all policies
see the same customers draw the same numbers: the comparison is paired.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.hashing import key_of
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.log import as_decision_rows, decision_rows
from nextbest.live.register import register_decisions
from nextbest.live.store import LiveStore
from nextbest.live.sync import sync
from nextbest.errors import BadInputError
from nextbest.models.scoring import Scorer
from nextbest.serving.client import NextbestClient
from nextbest.serving.connections import warehouse_connection
from nextbest.simulation.accounting import Ledger, summarise
from nextbest.simulation.audience import EventOnsets, audience
from nextbest.simulation.events import DueEvents, PendingEvents, append_rows, record_responses
from nextbest.simulation.policies import (
    MODEL_POLICIES,
    OracleScorer,
    RulesScorer,
    UniformScorer,
    policy_config,
)
from nextbest.simulation.options import SimulationOptions, SimulationRun
from nextbest.simulation.processes import DayCallback, run_tasks
from nextbest.simulation.replicas import checkpoint, replicate, simulations_root
from nextbest.simulation.service import ServiceProcess
from nextbest.simulation.violations import count_violations
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from nextbest.world import World


@dataclass(frozen=True)
class DecidedDay:
    """What a policy decided on one simulated day, as the world stood when it decided.

    Handed to a :data:`DecisionObserver` before the world answers, so an observer
    can score the same candidates with the truth (``OracleScorer(world)``) and
    the same contact history: the basis of regret attribution
    (``benchmarks/loop_regret.py``). Observers must not change anything.

    Attributes
    ----------
    policy, day, at
        Policy name, day offset and decision time.
    audience
        The feature rows of the customers decided for.
    history
        The contact history the policy decided with (loaded before deciding).
    offer_history
        The offer-history rows of the current snapshot (``None`` without).
    decisions
        The logged decision rows (``customer_id, offer_id, channel, contacted``, ...).
    world
        The policy's own world, before the day's outcomes.
    config
        The policy's configuration.
    """

    policy: str
    day: int
    at: dt.datetime
    audience: pd.DataFrame
    history: ContactHistory
    offer_history: pd.DataFrame | None
    decisions: pd.DataFrame
    world: World
    config: NextbestConfig


#: Called with each policy's decisions of each day (see :class:`DecidedDay`).
DecisionObserver = Callable[[DecidedDay], None]


def counterfactual(world: World, decisions: pd.DataFrame, day: int) -> pd.DataFrame:
    """Responses the contacted ``decisions`` would have had unsent, on the world's same draws.

    Runs :meth:`World.respond` on a throw-away copy of the population, so the
    real world's state is untouched. Must be called before the real ``respond``.
    """
    sent = decisions[decisions["contacted"].astype(bool) & decisions["offer_id"].notna()]
    if sent.empty:
        return pd.DataFrame(columns=["decision_id", "ts", "outcome", "revenue"])
    shadow = copy.copy(world)
    shadow.population = copy.deepcopy(world.population)
    return shadow.respond(sent.assign(contacted=False), day).responses


def midnight(start: dt.date, day: int) -> dt.datetime:
    return dt.datetime.combine(start + dt.timedelta(days=day), dt.time())


class PolicySimulation:
    """One policy's loop over the simulated days (see the module docstring).

    Parameters
    ----------
    policy
        Policy name.
    ws
        The policy's own workspace copy.
    config
        The policy's configuration (:func:`~nextbest.simulation.policies.policy_config`).
    world
        The policy's own copy of the world, at the first simulated day.
    options
        Simulation options.
    rules
        Fitted rules scorer (for the ``rules`` policy).
    scorer
        Scorer a model policy uses instead of its registered models (see :func:`simulate`).
    observer
        Called with each day's decisions before the world answers (see :class:`DecidedDay`).
    """

    def __init__(
        self, policy: str, ws: Workspace, config: NextbestConfig, world: World, options: SimulationOptions,
        rules: RulesScorer | None = None, scorer: Scorer | None = None, observer: DecisionObserver | None = None,
    ) -> None:
        self.policy = policy
        self.scorer = scorer
        self.observer = observer
        self.ws = ws
        self.config = config
        self.world = world
        self.options = options
        self.rules = rules
        self.pending = PendingEvents()
        self.ledger = Ledger()
        self.model_versions: set[str] = set()
        self.retraining: list[dict[str, Any]] = []
        self.client: NextbestClient | None = None
        self.service_url: str | None = None
        self.engine: DecisionEngine | None = None
        self.features: pd.DataFrame | None = None
        self.offer_history: pd.DataFrame | None = None
        self._feature_models = None
        self._onsets = EventOnsets()
        # The replica's own live store, even when NEXTBEST_LIVE_URL names a shared one:
        # each policy's decisions must stay in its own copy of the world.
        self.store = LiveStore(ws.root_live_url, writer=f"simulate-{policy}")

    # ------------------------------------------------------------------ set-up
    def _scorers(self) -> dict[str, Scorer]:
        if self.scorer is not None:
            return {"champion": self.scorer}
        if self.policy in MODEL_POLICIES:
            from nextbest.decisioning.cli import load_scorers

            return load_scorers(self.ws, self.config)
        if self.policy == "oracle":
            return {"oracle": OracleScorer(self.world)}
        if self.policy == "rules":
            if self.rules is None:
                raise BadInputError("the rules policy needs a fitted RulesScorer")
            return {"rules": self.rules}
        return {"random": UniformScorer()}

    @property
    def decides(self) -> bool:
        return self.policy != "none"

    @property
    def served(self) -> bool:
        return self.policy in self.options.served

    # ------------------------------------------------------------------ the loop
    def run(self, on_day: DayCallback | None = None) -> tuple[dt.datetime, dt.datetime]:
        """Simulate ``options.days`` days; returns the simulated period ``[start, end)``."""
        first = self.world.day
        period = (midnight(self.world.start, first), midnight(self.world.start, first + self.options.days))
        server = ServiceProcess(self.ws) if self.served else None
        try:
            if self.decides:
                self._build_features(period[0])
            if server is not None:
                self.client = server.start().client()
                self.service_url = server.url
            elif self.decides:
                self.engine = DecisionEngine(self.config, self._scorers())
            for i in range(self.options.days):
                self._day(first + i, i)
                if on_day is not None:
                    on_day(self.policy, i + 1, self.options.days)
            self._record(self.pending.pop_due(pd.Timestamp(period[1]) - pd.Timedelta(microseconds=1)))
        finally:
            if self.client is not None:
                self.client.close()
            if server is not None:
                server.stop()
            self._sync()
            self.store.close()
        return period

    def _day(self, day: int, i: int) -> None:
        start = self.world.start
        at = midnight(start, day) + dt.timedelta(hours=self.options.decision_hour)
        if self.decides and i > 0 and i % self.options.features_every == 0:
            self._build_features(midnight(start, day))
        self._record(self.pending.pop_due(pd.Timestamp(at)))
        # Yesterday's decisions and today's outcomes into the warehouse, as a daily `nextbest data sync`.
        self._sync()

        decisions = pd.DataFrame(columns=["decision_id", "customer_id", "offer_id", "channel", "contacted"])
        responses = pd.DataFrame(columns=["decision_id", "ts", "outcome", "revenue"])
        cf = responses
        truth = pd.DataFrame(columns=["decision_id", "p_contact", "p_control", "expected_revenue"])
        if self.decides:
            assert self.features is not None
            who = audience(
                self.features, self.config, day=day, share=self.options.campaign_share, seed=self.options.seed,
                triggered=self._triggered(at),
            )
            if len(who):
                # The observer sees the history the policy decides with, not the one its decisions extend.
                seen = self._history(who, at) if self.observer is not None else None
                decisions = self._decide(who, at, seed=key_of("simulation.explore", self.options.seed, day) % 2**31)
                self.model_versions.update(str(v) for v in decisions["model_version"].dropna().unique())
                if seen is not None:
                    self.observer(DecidedDay(self.policy, day, at, who, seen, self.offer_history, decisions, self.world, self.config))
                cf = counterfactual(self.world, decisions, day)
                outcome = self.world.respond(decisions, day)
                responses, truth = outcome.responses, outcome.truth
                self.pending.add(outcome.responses, outcome.interactions, outcome.transactions)
        activity = self.world.advance(day)
        with warehouse_connection(self.ws.warehouse_path) as con:
            for table, frame in (
                ("customers", activity.customers), ("interactions", activity.interactions),
                ("transactions", activity.transactions), ("life_events", activity.life_events),
            ):
                append_rows(con, table, frame)
        self.ledger.add_day(day, decisions, responses, cf, truth, activity.transactions, self.config)

        every = self.options.retrain_every
        if self.policy in MODEL_POLICIES and every and (i + 1) % every == 0 and i + 1 < self.options.days:
            self._record(self.pending.pop_due(pd.Timestamp(midnight(start, day + 1))))
            self._retrain(day + 1)

    # ------------------------------------------------------------------ steps
    def _build_features(self, as_of: dt.datetime) -> None:
        from nextbest.features.fitted import FeatureModels
        from nextbest.features.pipeline import build_features, build_offer_history, fit_feature_models
        from nextbest.features.snapshots import manifest, write_snapshot

        with warehouse_connection(self.ws.warehouse_path) as con:
            sync(self.ws, self.store, con)
            if self._feature_models is None:
                # The workspace's fitted basket clusters and CLV model, as `features build` saved them;
                # fitted now only if there are none from before the simulation (no leakage either way).
                root = self.ws.artifacts_dir / "features"
                models = FeatureModels.latest(root, self.config)
                if models is None or models.fitted_as_of > pd.Timestamp(as_of):
                    models = fit_feature_models(con, as_of, self.config)
                    models.save(root)
                self._feature_models = models
            feats = build_features(con, as_of, self.config, models=self._feature_models)
            hist = build_offer_history(con, as_of, self.config)
            write_snapshot(con, self.config, feats, hist, manifest(feats, hist, pd.Timestamp(as_of), self._feature_models))
        self.features, self.offer_history = feats, hist
        if self.client is not None:
            self.client.refresh()

    def _decide(self, who: pd.DataFrame, at: dt.datetime, *, seed: int) -> pd.DataFrame:
        """Rank ``who`` at ``at`` and log the decisions; returns the ``decisions`` rows."""
        ids = who["customer_id"].to_numpy(np.int64)
        if self.client is not None:
            docs = self.client.rank_batch(ids.tolist(), context={"timestamp": at}, top_k=1, seed=seed)
            return decision_rows(docs)  # the service logged them itself
        assert self.engine is not None
        out = self.engine.decide(who, at, seed=seed, history=self._history(who, at), offer_history=self.offer_history)
        rows = as_decision_rows(out.decisions)
        register_decisions(self.store, rows)
        return rows

    def _triggered(self, at: dt.datetime) -> np.ndarray:
        """(n,) whether a trigger fires today for each feature row: its event began, its cool-down is over."""
        assert self.features is not None
        began = self._onsets.update(self.features, self.config)
        rows = np.flatnonzero(began.any(axis=1))
        fired = np.zeros(len(self.features), dtype=bool)
        if len(rows):
            ids = self.features["customer_id"].to_numpy(np.int64)[rows]
            with warehouse_connection(self.ws.warehouse_path) as con:
                view = ContactHistory.load(con, self.config, at, ids).view(ids, at)
            fired[rows] = (began[rows] & ~view.trigger_cooling).any(axis=1)
        return fired

    def _history(self, who: pd.DataFrame, at: dt.datetime) -> ContactHistory:
        """The logged contact history of ``who`` as of ``at``."""
        with warehouse_connection(self.ws.warehouse_path) as con:
            return ContactHistory.load(con, self.config, at, who["customer_id"].to_numpy(np.int64))

    def _record(self, due: DueEvents) -> None:
        """Write the events whose time has come (feedback through the service's own code)."""
        over_http = self.client is not None and self.options.http_feedback
        if over_http and len(due.responses):
            for r in due.responses.itertuples(index=False):
                revenue = None if r.revenue is None or (isinstance(r.revenue, float) and math.isnan(r.revenue)) else float(r.revenue)
                self.client.feedback(str(r.decision_id), str(r.outcome), revenue=revenue, timestamp=pd.Timestamp(r.ts).to_pydatetime())
        if not over_http:
            record_responses(self.store, due.responses)
        with warehouse_connection(self.ws.warehouse_path) as con:
            append_rows(con, "interactions", due.interactions)
            append_rows(con, "transactions", due.transactions)

    def _retrain(self, day: int) -> None:
        """Train a challenger on everything logged so far; promote it only through the gate."""
        from nextbest.training.retrain import RetrainOptions, retrain

        # `nextbest retrain`'s code path; the loop builds its own snapshots and refreshes its own service.
        options = RetrainOptions(
            tune_trials=self.options.tune_trials, snapshot=False, announce=False, run_name=f"simulation-day-{day}",
        )
        report = retrain(self.ws, options, store=self.store)
        self.retraining.append(
            {
                "day": day, "version": report.version, "promoted": report.promoted, "reason": report.reason,
                "champion": report.champion, "seconds": round(report.seconds, 1),
            }
        )
        if self.client is not None:
            self.client.refresh()
        else:
            self.engine = DecisionEngine(self.config, self._scorers())

    def _sync(self) -> None:
        """Copy the replica's live rows into its warehouse (``nextbest data sync``)."""
        with warehouse_connection(self.ws.warehouse_path) as con:
            sync(self.ws, self.store, con)

    def violations(self, period: tuple[dt.datetime, dt.datetime]) -> dict[str, int]:
        """Contact-policy violations of the simulated period, audited from the decision log (synced)."""
        con = connect(self.ws.warehouse_path, read_only=True)
        try:
            return count_violations(con, self.config, period[0], period[1])
        finally:
            con.close()


@dataclass(frozen=True)
class PolicyTask:
    """What :func:`run_policy` needs to simulate one policy (picklable for a worker process)."""

    policy: str
    ws: Workspace
    config: NextbestConfig
    world: World
    options: SimulationOptions
    rules: RulesScorer | None
    scorer: Scorer | None
    observer: DecisionObserver | None


@dataclass(frozen=True)
class PolicyOutcome:
    """One simulated policy: its ledger, audit and model history."""

    policy: str
    ws: Workspace
    ledger: Ledger
    violations: dict[str, int]
    model_versions: list[str]
    retraining: list[dict[str, Any]]
    service_url: str | None


def run_policy(task: PolicyTask, on_day: DayCallback | None = None) -> PolicyOutcome:
    """Simulate one policy on its own copy of the world (:class:`PolicySimulation`)."""
    sim = PolicySimulation(task.policy, task.ws, task.config, copy.deepcopy(task.world), task.options, task.rules,
                           task.scorer, task.observer)
    period = sim.run(on_day)
    return PolicyOutcome(task.policy, task.ws, sim.ledger, sim.violations(period), sorted(sim.model_versions),
                         sim.retraining, sim.service_url)


def fit_rules(ws: Workspace, config: NextbestConfig) -> RulesScorer:
    """The rules baseline learnt from the workspace's historical log (snapshots built if missing)."""
    from nextbest.training.trainer import load_training_set

    data, _ = load_training_set(ws, config)
    frame = data.frame
    if "experiment" in frame.columns and (frame["experiment"] == "historical").any():
        frame = frame[frame["experiment"] == "historical"]
    return RulesScorer(config).fit(frame)


def simulate(
    ws: Workspace,
    options: SimulationOptions,
    on_day: DayCallback | None = None,
    *,
    scorers: Mapping[str, Scorer] | None = None,
    observer: DecisionObserver | None = None,
) -> SimulationRun:
    """Run every policy of ``options`` on paired copies of the workspace's world.

    Parameters
    ----------
    ws
        A workspace holding a generated world (``nextbest data generate``) and, for
        model policies, a champion (``nextbest train``).
    options
        What to simulate (validated here).
    on_day
        Progress callback.
    scorers
        Model policy → a scorer it decides with instead of the registered models, in
        process (e.g. an upper-bound scorer in ``benchmarks/model_ceiling.py``); such a
        policy cannot be served.
    observer
        Called with every policy's decisions of every day, before the world answers
        (:class:`DecidedDay`); ``None`` = nobody watches.

    Raises
    ------
    NotFoundError
        No synthetic world in the warehouse, or no champion for a model policy.
    BadInputError
        Invalid options.
    """
    options = options.check()
    if observer is not None and options.jobs > 1:
        raise BadInputError("an observer watches the policies in this process: simulate with jobs=1")
    scorers = dict(scorers or {})
    for policy in scorers:
        if policy not in MODEL_POLICIES or policy not in options.policies or policy in options.served:
            raise BadInputError(
                f"a scorer was given for {policy!r}: only a simulated model policy that is not served takes one"
            )
    began = time.perf_counter()
    base_config = ws.config()
    # Decisions the workspace's services made belong to the history every replica starts from.
    sync(ws)
    checkpoint(ws)
    con = connect(ws.warehouse_path, read_only=True)
    try:
        world = World.load(con, base_config)
    finally:
        con.close()
    rules = fit_rules(ws, base_config) if "rules" in options.policies else None
    run_name = options.run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = simulations_root(ws) / run_name

    tasks = []
    for policy in options.policies:
        config = policy_config(base_config, policy, options.experiment)
        pws = replicate(ws, folder / policy, config)
        tasks.append(PolicyTask(policy, pws, config, world, options, rules, scorers.get(policy), observer))
    # The slowest first (served over HTTP, then model policies), so parallel jobs end together.
    tasks.sort(key=lambda t: (t.policy not in options.served, t.policy not in MODEL_POLICIES))
    done = {o.policy: o for o in run_tasks(run_policy, tasks, options.jobs, on_day)}
    done = {p: done[p] for p in options.policies}
    period = (midnight(world.start, world.day), midnight(world.start, world.day + options.days))
    ledgers = {p: o.ledger for p, o in done.items()}
    violations = {p: o.violations for p, o in done.items()}
    workspaces = {p: str(o.ws.root) for p, o in done.items()}
    versions = {p: o.model_versions for p, o in done.items()}
    retraining = {p: o.retraining for p, o in done.items()}
    services = {p: o.service_url for p, o in done.items() if o.service_url}
    results = summarise(ledgers, violations, workspaces, versions, options.period_days)
    return SimulationRun(
        folder=folder, start=period[0].date(), end=period[1].date(), options=options, results=results,
        seconds=time.perf_counter() - began, retraining=retraining, services=services,
    )
