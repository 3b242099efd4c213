"""On a generated world (fixed seed) the reports recover the world's hidden truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.reporting.abtest import analyze_experiments
from nextbest.reporting.ope import NO_ACTION, InverseProbabilityWeighting, SelfNormalizedIPW, bandit_from_outcomes
from nextbest.reporting.outcomes import load_outcomes
from nextbest.warehouse.db import connect

world_mod = pytest.importorskip("nextbest.world.world", reason="the synthetic world (team W) is not installed")


@pytest.fixture(scope="module")
def world_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Outcomes of a 6,000-customer, 150-day world and the truth of each decision."""
    config = load_config()
    path: Path = tmp_path_factory.mktemp("world") / "warehouse.duckdb"
    con = connect(path)
    try:
        world_mod.World.create(6000, seed=11, config=config).write_history(con, days=150)
        outcomes = load_outcomes(con, config)
        truth = con.execute("SELECT * FROM ground_truth.decision_truth").df()
    finally:
        con.close()
    truth = outcomes[["decision_id", "arm", "contacted", "offer_id"]].merge(truth, on="decision_id", how="left")
    assert truth["p_contact"].notna().all(), "every logged decision has its truth"
    return outcomes, truth


def test_ab_analysis_recovers_the_true_incremental_effect(world_log) -> None:
    outcomes, truth = world_log
    analysis = analyze_experiments(outcomes, currency="EUR", n_resamples=1000)
    row = analysis.comparisons.set_index(["treatment", "baseline"]).loc[("random", "control")]
    treated = truth[truth["arm"] != "control"]
    lift = treated["p_contact"] - treated["p_control"]
    true_conv, true_rev = float(lift.mean()), float((lift * treated["expected_revenue"]).mean())
    print(f"world A/B: conversion uplift {row['converted_uplift']:.4f} [{row['converted_lower']:.4f}, "
          f"{row['converted_upper']:.4f}] truth {true_conv:.4f}; revenue/decision {row['revenue_uplift']:.3f} "
          f"[{row['revenue_lower']:.3f}, {row['revenue_upper']:.3f}] truth {true_rev:.3f}")
    assert row["converted_lower"] <= true_conv <= row["converted_upper"]
    assert row["revenue_lower"] <= true_rev <= row["revenue_upper"]
    assert row["significant"]


@pytest.mark.parametrize("theta", [0.0, 0.5, 1.0])
def test_ope_recovers_contact_share_policies(world_log, theta: float) -> None:
    """Policy θ: contact with the historical campaign's random action with probability θ, else hold out.

    Its true value per decision is ``θ p_contact + (1 - θ) p_control``, known for every logged
    decision (control rows record the action they would have got).
    """
    outcomes, truth = world_log
    # The weekly campaigns' log (the contact-frequency test logs cells of its own, with other propensities).
    campaign = (outcomes["experiment"] == "historical").to_numpy()
    outcomes, truth = outcomes[campaign].reset_index(drop=True), truth[campaign].reset_index(drop=True)
    data = bandit_from_outcomes(outcomes)
    names = np.asarray(data.action_names)
    none = int(np.flatnonzero(names == NO_ACTION)[0])
    rows = np.arange(data.n_rounds)
    logged_none = data.action == none
    within = pd.to_numeric(outcomes["propensity"], errors="coerce").to_numpy()
    # The target's probability of the logged action is all IPS needs; the rest of each row's
    # mass goes to another action so rows stay distributions.
    dist = np.zeros((data.n_rounds, data.n_actions))
    dist[rows, none] = 1 - theta
    p_logged = np.where(logged_none, 1 - theta, theta * within)
    dist[rows, data.action] = p_logged
    other = np.where(data.action == (none + 1) % data.n_actions, (none + 2) % data.n_actions, (none + 1) % data.n_actions)
    dist[rows, other] += 1 - dist.sum(axis=1)
    truth_value = float((theta * truth["p_contact"] + (1 - theta) * truth["p_control"]).mean())
    for est in (InverseProbabilityWeighting(), SelfNormalizedIPW()):
        v = est.estimate_interval(data, dist)
        print(f"world OPE θ={theta}: {est.name} {v.value:.4f} [{v.lower:.4f}, {v.upper:.4f}] truth {truth_value:.4f}")
        assert v.covers(truth_value), (est.name, v, truth_value)
