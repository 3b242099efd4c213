"""The closed loop on a tiny world: paired draws, baselines through the engine, clean logs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import BadInputError
from nextbest.models.registry import list_versions
from nextbest.simulation.runner import SimulationOptions, counterfactual, simulate
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from nextbest.world import World


def _world(ws: Workspace) -> World:
    con = connect(ws.warehouse_path, read_only=True)
    try:
        return World.load(con, ws.config())
    finally:
        con.close()


def _some_decisions(world: World, n: int = 60) -> pd.DataFrame:
    truth = world.true_probabilities(world.population.customer_id[:n])
    pick = truth.groupby("customer_id").head(1).reset_index(drop=True)
    return pick.assign(decision_id=[f"x{i}" for i in range(len(pick))], contacted=True)[
        ["decision_id", "customer_id", "offer_id", "channel", "contacted"]
    ]


def test_copies_of_the_world_draw_the_same_outcomes(tiny: Workspace) -> None:
    world = _world(tiny)
    decisions = _some_decisions(world)
    a, b = copy.deepcopy(world), copy.deepcopy(world)
    pd.testing.assert_frame_equal(a.respond(decisions, a.day).responses, b.respond(decisions, b.day).responses)
    pd.testing.assert_frame_equal(a.advance().transactions, b.advance().transactions)


def test_the_counterfactual_is_the_same_draw_unsent_and_leaves_the_world_alone(tiny: Workspace) -> None:
    world = _world(tiny)
    decisions = _some_decisions(world, n=200)
    before = copy.deepcopy(world.population)
    cf = counterfactual(world, decisions, world.day)
    for name, value in vars(before).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(world.population, name), err_msg=name)
    unsent = copy.deepcopy(world).respond(decisions.assign(contacted=False), world.day).responses
    pd.testing.assert_frame_equal(cf, unsent)


@pytest.fixture(scope="module")
def small_run(tiny_template: Workspace, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    import shutil

    root = tmp_path_factory.mktemp("sim-run") / "ws"
    shutil.copytree(tiny_template.root, root)
    ws = Workspace(root)
    options = SimulationOptions(days=4, policies=("random", "oracle", "rules"), campaign_share=0.2, run_name="t")
    return ws, simulate(ws, options)


def test_every_policy_is_compared_with_none_and_the_oracle(small_run) -> None:  # noqa: ANN001
    ws, run = small_run
    results = {r.policy: r for r in run.results}
    assert list(results) == ["random", "oracle", "rules", "none"]
    assert results["none"].contact_cost == 0 and results["none"].incremental_profit == 0
    assert results["oracle"].regret_vs_oracle == 0
    assert results["oracle"].expected_incremental_profit > results["random"].expected_incremental_profit
    for r in run.results:
        assert r.total_violations == 0, (r.policy, r.violations)
    assert sum(results["random"].contacts_by_channel.values()) > 0
    doc = json.loads(json.dumps(run.as_json()))
    assert {d["policy"] for d in doc} == set(results)


def test_each_policy_logs_into_its_own_workspace_copy(small_run) -> None:  # noqa: ANN001
    ws, run = small_run
    con = connect(ws.warehouse_path, read_only=True)
    try:
        base_decisions = con.execute("SELECT count(*) FROM decisions WHERE experiment NOT IN ('historical', 'frequency_test')").fetchone()[0]
    finally:
        con.close()
    assert base_decisions == 0  # the starting workspace is never touched
    for policy in ("random", "oracle"):
        con = connect(run.folder / policy / "warehouse.duckdb", read_only=True)
        try:
            arms = dict(con.execute(
                "SELECT arm, bool_or(contacted) FROM decisions WHERE ts >= ? AND experiment NOT IN ('historical', 'frequency_test') "
                "GROUP BY arm", [run.start]
            ).fetchall())
            snapshots = con.execute("SELECT count(DISTINCT as_of) FROM features.customer_snapshot WHERE as_of >= ?",
                                    [run.start]).fetchone()[0]
        finally:
            con.close()
        # The policy's one arm, and the universal control group it never contacts.
        assert set(arms) == {policy, "universal_control"} and arms["universal_control"] is False
        assert snapshots == run.options.days  # daily features


def test_policies_in_worker_processes_give_the_figures_of_one_after_the_other(small_run) -> None:  # noqa: ANN001
    ws, run = small_run
    days: list[tuple[str, int]] = []
    parallel = simulate(ws, SimulationOptions(**{**run.options.__dict__, "run_name": "t-jobs", "jobs": 2}),
                        lambda policy, done, total: days.append((policy, done)))

    def figures(r) -> list[dict]:  # noqa: ANN001
        return [{k: v for k, v in d.items() if k != "workspace"} for d in r.as_json()]

    assert figures(parallel) == figures(run)
    # Every policy's progress reached this process, day by day.
    assert sorted(days) == sorted((p, d) for p in run.options.policies for d in range(1, run.options.days + 1))
    assert {r.workspace for r in parallel.results} == {str(parallel.folder / p) for p in run.options.policies}


def test_an_observer_needs_the_policies_in_this_process() -> None:
    with pytest.raises(BadInputError, match="an observer watches the policies in this process: simulate with jobs=1"):
        simulate(Workspace("/nonexistent"), SimulationOptions(days=1, jobs=2), observer=lambda _day: None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SimulationOptions(days=0), "--days must be at least 1"),
        (SimulationOptions(policies=("best",)), "--policy 'best' is unknown"),
        (SimulationOptions(campaign_share=1.5), "--campaign-share must be between 0 and 1"),
        (SimulationOptions(features_every=0), "--features-every must be at least 1"),
        (SimulationOptions(retrain_every=-1), "--retrain-every must be 0"),
        (SimulationOptions(period_days=0), "--period-days must be at least 1 day, got 0"),
        (SimulationOptions(policies=("oracle",), served=("oracle",)), "cannot run through the service"),
        (SimulationOptions(run_name="../x"), "use a plain folder name"),
        (SimulationOptions(jobs=0), "--jobs must be at least 1"),
    ],
)
def test_invalid_options_name_the_option(options: SimulationOptions, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        options.check()


def test_a_model_policy_can_decide_with_a_given_scorer(tiny: Workspace) -> None:
    from nextbest.simulation.policies import UniformScorer

    # No champion is registered in the tiny workspace: the given scorer is all the policy uses.
    run = simulate(tiny, SimulationOptions(days=2, policies=("champion",), campaign_share=0.2, run_name="given"),
                   scorers={"champion": UniformScorer()})
    con = connect(run.folder / "champion" / "warehouse.duckdb", read_only=True)
    try:
        versions = con.execute(
            "SELECT DISTINCT model_version FROM decisions WHERE experiment NOT IN ('historical', 'frequency_test') AND offer_id IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    assert versions == [("random",)]
    assert all(r.total_violations == 0 for r in run.results)


@pytest.mark.parametrize(
    ("options", "policy"),
    [
        (SimulationOptions(days=1, policies=("rules",)), "rules"),
        (SimulationOptions(days=1, policies=("random",)), "champion"),
        (SimulationOptions(days=1, policies=("champion",), served=("champion",)), "champion"),
    ],
)
def test_a_scorer_for_a_policy_that_cannot_take_one_is_refused(options: SimulationOptions, policy: str) -> None:
    from nextbest.simulation.policies import UniformScorer

    with pytest.raises(BadInputError, match=f"a scorer was given for '{policy}': only a simulated model policy"):
        simulate(Workspace("/nonexistent"), options, scorers={policy: UniformScorer()})


def test_retraining_trains_on_the_loop_log_and_goes_through_the_gate(tiny: Workspace) -> None:
    from nextbest.training.trainer import TrainOptions, train

    first = train(tiny, TrainOptions(run_name="first"))
    assert first.version is not None and first.champion
    artifacts = {p: p.stat().st_mtime_ns for p in tiny.mlartifacts_dir.rglob("*")}
    run = simulate(tiny, SimulationOptions(days=3, policies=("champion",), campaign_share=0.3, retrain_every=2,
                                           run_name="retrain"))
    (retrained,) = run.retraining["champion"]
    assert retrained["day"] and retrained["version"] and retrained["reason"]
    # The retrained model is logged in the policy's copy of the workspace, not in the one it started from.
    assert {p: p.stat().st_mtime_ns for p in tiny.mlartifacts_dir.rglob("*")} == artifacts
    replica = Workspace(run.folder / "champion")
    assert [v.label for v in list_versions(replica.tracking_uri)] == [retrained["version"], first.version.label]
    assert [v.label for v in list_versions(tiny.tracking_uri)] == [first.version.label]
    assert run.result("champion").total_violations == 0
    con = connect(run.folder / "champion" / "warehouse.duckdb", read_only=True)
    try:
        logged = con.execute("SELECT count(*) FROM decisions WHERE experiment NOT IN ('historical', 'frequency_test')").fetchone()[0]
    finally:
        con.close()
    assert logged > 0


def _gate(ws: Workspace, min_improvement: float) -> None:
    import yaml

    path = ws.config_dir / "training.yaml"
    training = yaml.safe_load(path.read_text()) if path.exists() else {}
    training["promotion"] = {"metric": "test_auc", "min_improvement": min_improvement}
    path.write_text(yaml.safe_dump(training))


def _loop_versions(run, policy: str) -> pd.DataFrame:  # noqa: ANN001
    con = connect(run.folder / policy / "warehouse.duckdb", read_only=True)
    try:
        return con.execute(
            "SELECT CAST(ts AS DATE) AS day, model_version, count(*) AS n FROM decisions "
            "WHERE experiment NOT IN ('historical', 'frequency_test') GROUP BY ALL ORDER BY ALL"
        ).df()
    finally:
        con.close()


def test_retraining_in_the_loop_promotes_only_through_the_gate(tiny: Workspace) -> None:
    """A challenger that fails the gate leaves the champion deciding; one that passes it decides from then on."""
    from dataclasses import replace

    from nextbest.models.registry import get_version
    from nextbest.training.trainer import TrainOptions, load_training_set, run_training

    # A champion that sees only the offer and channel: any model of the customers beats it.
    config = tiny.config()
    data, _ = load_training_set(tiny, config)
    weak = replace(data, feature_columns=("offer_id", "channel"), categorical=("offer_id", "channel"))
    first = run_training(tiny, config, weak, TrainOptions(run_name="weak"))
    assert first.champion and first.version is not None
    options = dict(days=3, policies=("champion",), campaign_share=0.3, retrain_every=2)

    _gate(tiny, 1.0)  # no AUC improves by a whole unit: the gate refuses every challenger
    kept = simulate(tiny, SimulationOptions(**options, run_name="gate-closed"))
    (event,) = kept.retraining["champion"]
    assert not event["promoted"] and "champion kept" in event["reason"]
    assert event["champion"] == first.version.label != event["version"]
    versions = _loop_versions(kept, "champion")
    assert set(versions["model_version"]) == {first.version.label}

    _gate(tiny, 0.0)
    promoted = simulate(tiny, SimulationOptions(**options, run_name="gate-open"))
    (event,) = promoted.retraining["champion"]
    assert event["promoted"], event["reason"]
    assert event["champion"] == event["version"] != first.version.label
    versions = _loop_versions(promoted, "champion")
    days = sorted(versions["day"].unique())
    # Decided by the first champion until the retraining, by the promoted challenger after it.
    assert set(versions.loc[versions["day"] < days[-1], "model_version"]) == {first.version.label}
    assert set(versions.loc[versions["day"] == days[-1], "model_version"]) == {event["version"]}
    replica = Workspace(promoted.folder / "champion")
    assert get_version(replica.tracking_uri, "champion").label == event["version"]
    assert get_version(tiny.tracking_uri, "champion").label == first.version.label  # the workspace itself is untouched
    assert promoted.result("champion").total_violations == 0
