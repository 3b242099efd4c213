"""``nextbest demo``: from an empty folder to a measured, served, reported NBA deployment.

Steps (each reuses its result when it is still valid for the workspace, see below):

1. **workspace**   the example configuration (``nextbest init``);
2. **world**       a synthetic world with history and hidden truth (``nextbest data generate``);
3. **features**    a snapshot as of the end of the history (``nextbest features build``);
4. **model**       a short Optuna study, then the response/uplift model is trained,
                   registered and promoted (``nextbest train --tune N``, ``nextbest promote``);
5. **simulation**  30 days, paired: the champion, the rules and random baselines, the
                   oracle and no contact, plus a champion / rules / control A/B that is
                   ranked through the real scoring service (``nextbest serve``, on a free
                   local port, stopped at the end);
6. **reports**     the uplift report and the A/B analysis of that experiment.

Re-running: ``--fresh`` wipes the workspace first. Without it nothing stale is
reused: the world is reused only if it was generated with the same size, history
and seed (else the command stops and asks for ``--fresh``); the feature snapshot
only if one exists as of the end of that history; the model only if a champion is
registered (it was trained on that same world, since only ``--fresh`` replaces the
world). Simulations and reports are always new (``simulations/demo-<time>/``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextbest.config import Arm, Experiment
from nextbest.errors import BadInputError
from nextbest.progress import progress_bar
from nextbest.simulation.runner import SimulationOptions, SimulationRun, simulate
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

#: The A/B experiment the demo runs through the service.
DEMO_EXPERIMENT = Experiment(
    name="demo-ab",
    arms=(
        Arm(name="champion", share=0.8, policy="model", model_alias="champion"),
        Arm(name="rules", share=0.1, policy="rules"),
        Arm(name="control", share=0.1, policy="control"),
    ),
    salt="demo",
)
DEMO_POLICIES: tuple[str, ...] = ("champion", "rules", "random", "oracle", "none", "experiment")
#: Policies the demo simulates at once (the machines it is made for have two cores).
DEMO_JOBS = 2


@dataclass(frozen=True)
class DemoOptions:
    """Size of the demo; the defaults finish in under 10 minutes on 2 cores."""

    customers: int = 5_000
    history_days: int = 150
    days: int = 30
    seed: int = 0
    tune_trials: int = 5
    fresh: bool = False

    def check(self) -> DemoOptions:
        if self.customers < 200:
            raise BadInputError(f"--customers must be at least 200 for a meaningful demo, got {self.customers}")
        if self.history_days < 60:
            raise BadInputError(f"--history-days must be at least 60 (training needs a time split), got {self.history_days}")
        if self.days < 1:
            raise BadInputError(f"--days must be at least 1, got {self.days}")
        return self


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did and where to look."""

    workspace: Path
    steps: dict[str, str]
    simulation: SimulationRun
    service_url: str | None
    uplift_report: Path | None
    ab_report: Path | None
    ab_verdicts: list[str]
    tracking_uri: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def wipe(ws: Workspace) -> None:
    """Delete the workspace folder, refusing anything that does not look like a workspace."""
    root = ws.root
    if not root.exists():
        return
    markers = {"warehouse.duckdb", "config", "mlflow.db", "simulations", "reports", "artifacts", "mlartifacts", "logs",
               "live.db", "live.db-wal", "live.db-shm", "live.db.lock", ".audit-key", "audit.log"}
    unknown = [p.name for p in root.iterdir() if p.name not in markers and not p.name.endswith((".log", ".wal"))]
    if unknown:
        raise BadInputError(
            f"--fresh: {root} holds files a workspace does not ({', '.join(sorted(unknown)[:5])}); "
            "refusing to delete it — choose another --workspace"
        )
    shutil.rmtree(root)


def _world_params(ws: Workspace) -> dict[str, object] | None:
    if not ws.warehouse_path.exists():
        return None
    con = connect(ws.warehouse_path, read_only=True)
    try:
        customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
        try:
            row = con.execute("SELECT detail FROM ground_truth.seeded_defects WHERE kind = 'params'").fetchone()
        except Exception:  # noqa: BLE001 - no ground_truth schema: imported data
            row = None
    finally:
        con.close()
    if row is None:
        return {"customers": customers} if customers else None
    meta = json.loads(row[0])
    return {"customers": customers, "n_customers": meta["n_customers"], "seed": meta["seed"], "day": meta["day"]}


def ensure_world(ws: Workspace, options: DemoOptions, say: Callable[[str], None]) -> str:
    """Generate the world unless the same one is there; returns what was done."""
    from nextbest.world import World

    found = _world_params(ws)
    wanted = {"n_customers": options.customers, "seed": options.seed, "day": options.history_days}
    if found is not None:
        if all(found.get(k) == v for k, v in wanted.items()):
            return "reused"
        raise BadInputError(
            f"{ws.warehouse_path} holds other data ({found}) than this demo would generate ({wanted}); "
            "run `nextbest demo --fresh` to start over, or pick another --workspace"
        )
    world = World.create(options.customers, seed=options.seed, config=ws.config())
    con = connect(ws.warehouse_path)
    try:
        with progress_bar() as bar:
            task = bar.add_task("world history", total=options.history_days)
            world.write_history(con, options.history_days, progress=lambda d: bar.update(task, completed=d))
    finally:
        con.close()
    say(f"generated {options.customers:,} customers × {options.history_days} days (seed {options.seed})")
    return "generated"


def ensure_features(ws: Workspace, say: Callable[[str], None]) -> str:
    """A feature snapshot as of midnight after the last event, unless it exists."""
    from nextbest.features.fitted import FeatureModels
    from nextbest.features.pipeline import build_features, build_offer_history, fit_feature_models
    from nextbest.features.snapshots import manifest, snapshot_dates, write_snapshot

    config = ws.config()
    con = connect(ws.warehouse_path)
    try:
        latest = con.execute(
            "SELECT max(ts) FROM (SELECT max(ts) AS ts FROM interactions UNION ALL SELECT max(ts) FROM transactions)"
        ).fetchone()[0]
        as_of = pd.Timestamp(latest).normalize() + pd.Timedelta(days=1)
        if as_of in snapshot_dates(con):
            return "reused"
        root = ws.artifacts_dir / "features"
        models = FeatureModels.latest(root, config)
        if models is None or models.fitted_as_of > as_of:
            models = fit_feature_models(con, as_of, config)
            models.save(root)
        feats = build_features(con, as_of, config, models=models)
        hist = build_offer_history(con, as_of, config)
        write_snapshot(con, config, feats, hist, manifest(feats, hist, as_of, models))
    finally:
        con.close()
    say(f"feature snapshot as of {as_of.date()}: {len(feats):,} customers")
    return "built"


def ensure_model(ws: Workspace, options: DemoOptions, say: Callable[[str], None]) -> str:
    """Tune, train, register and promote, unless a champion is registered."""
    from nextbest.models.registry import CHAMPION, get_version
    from nextbest.training.promotion import promote
    from nextbest.training.trainer import TrainOptions, train

    if get_version(ws.tracking_uri, CHAMPION) is not None:
        return "reused"
    result = train(ws, TrainOptions(tune_trials=options.tune_trials, run_name="demo"), progress=say)
    decision = promote(ws)
    auc = result.metrics.get("test_auc", float("nan"))
    say(f"trained {result.version.label if result.version else '?'} (test AUC {auc:.3f}); {decision.reason}")
    return "trained"


def prepare(ws: Workspace, options: DemoOptions, say: Callable[[str], None], *, model: bool = True) -> dict[str, str]:
    """The demo's world, features and (with ``model``) champion in ``ws``; each step is skipped when done.

    Returns what each step did (``generated``/``reused``, ...). Benchmarks build their
    demo-sized workspaces through this too, so they measure the world the demo runs on.
    """
    ws.ensure()
    if not all((ws.config_dir / f"{n}.yaml").exists() for n in ("channels", "offers", "policy")):
        ws.init_config()
    steps = {"world": ensure_world(ws, options, say), "features": ensure_features(ws, say)}
    if model:
        steps["model"] = ensure_model(ws, options, say)
    return steps


@contextmanager
def given_or_demo(path: Path | None, options: DemoOptions, *, model: bool = True) -> Iterator[Workspace]:
    """The workspace at ``path``, or a demo-sized one :func:`prepare`\ d in a temporary folder for the block."""
    if path is not None:
        yield Workspace(path)
        return
    with tempfile.TemporaryDirectory(prefix="nextbest-demo-") as tmp:
        ws = Workspace(Path(tmp) / "demo")
        prepare(ws, options, lambda _m: None, model=model)
        yield ws


def run_demo(ws: Workspace, options: DemoOptions, say: Callable[[str], None]) -> DemoSummary:
    """Run every step of the demo on ``ws`` (see the module docstring)."""
    from nextbest.reporting.ab_page import run_ab_analysis
    from nextbest.reporting.uplift_report import build_uplift_report

    options = options.check()
    began = time.perf_counter()
    if options.fresh:
        wipe(ws)
    steps = {"workspace": str(ws.root)} | prepare(ws, options, say)

    sim_options = SimulationOptions(
        days=options.days, policies=DEMO_POLICIES, seed=options.seed, served=("experiment",), http_feedback=False,
        run_name=f"demo-{dt.datetime.now():%Y%m%d-%H%M%S}", experiment=DEMO_EXPERIMENT,
        # Two policies at a time, one process each: the same figures, and on two idle cores
        # the simulation, most of the demo's time, takes about half as long.
        jobs=DEMO_JOBS,
    )
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def on_day(policy: str, done: int, total: int) -> None:
            if policy not in tasks:
                tasks[policy] = bar.add_task(f"simulate {policy}", total=total)
            bar.update(tasks[policy], completed=done)

        run = simulate(ws, sim_options, on_day)
    steps["simulation"] = str(run.folder)

    ab_ws = Workspace(run.folder / "experiment")
    notes: list[str] = []
    uplift_path = ab_path = None
    verdicts: list[str] = []
    try:
        uplift_path = build_uplift_report(ab_ws, experiment=DEMO_EXPERIMENT.name, alias="champion").path
    except BadInputError as exc:
        notes.append(f"uplift report: {exc}")
    try:
        ab = run_ab_analysis(ab_ws, experiment=DEMO_EXPERIMENT.name)
        ab_path, verdicts = ab.html_path, ab.analysis.verdicts
    except BadInputError as exc:
        notes.append(f"A/B analysis: {exc}")
    return DemoSummary(
        workspace=ws.root, steps=steps, simulation=run, service_url=run.services.get("experiment"),
        uplift_report=uplift_path, ab_report=ab_path, ab_verdicts=verdicts, tracking_uri=ws.tracking_uri,
        seconds=time.perf_counter() - began, notes=notes,
    )
