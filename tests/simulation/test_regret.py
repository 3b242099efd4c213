"""Regret attribution: the observer sees each day's decisions before the world answers."""

from __future__ import annotations

import numpy as np

from nextbest.simulation.regret import RegretBook, historical_pressure, summarise
from nextbest.simulation.runner import DecidedDay, SimulationOptions, simulate
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace


def test_the_oracle_policy_books_no_regret_and_random_books_some(tiny: Workspace) -> None:
    book = RegretBook()
    seen: list[DecidedDay] = []

    def observe(day: DecidedDay) -> None:
        seen.append(day)
        book(day)

    run = simulate(tiny, SimulationOptions(days=3, policies=("oracle", "random"), campaign_share=0.3, run_name="regret"),
                   observer=observe)
    assert [(d.policy, d.day) for d in seen] == [(p, seen[0].day + i) for p in ("oracle", "random") for i in range(3)]
    frame = book.frame()
    assert len(frame) == sum(len(d.audience) for d in seen)
    assert not frame["policy"].isna().any()  # every choice was among the candidates the truth scored
    oracle_rows = frame.iloc[: sum(len(d.audience) for d in seen if d.policy == "oracle")]
    random_rows = frame.iloc[len(oracle_rows):]
    # The oracle policy decides on the same truth, history and world state the book scores with.
    np.testing.assert_allclose(oracle_rows["policy"], oracle_rows["oracle"], rtol=1e-9, atol=1e-12)
    assert oracle_rows["oracle"].sum() > 0
    assert random_rows["policy"].sum() < random_rows["oracle"].sum()
    assert run.result("oracle").total_violations == 0


def test_the_summary_splits_the_shares_by_period_trigger_and_pressure(tiny: Workspace) -> None:
    from nextbest.training.trainer import TrainOptions, train

    train(tiny, TrainOptions(run_name="champion"))  # also builds the snapshots of the decision dates
    book = RegretBook()
    simulate(tiny, SimulationOptions(days=2, policies=("champion",), campaign_share=0.3, run_name="summary"),
             observer=book)
    frame = book.frame()
    support = historical_pressure(tiny, tiny.config())
    out = summarise(frame, support)
    assert out["decisions"] == len(frame)
    assert out["share"] == round(frame["policy"].sum() / frame["oracle"].sum(), 3)
    assert sum(r["decisions"] for r in out["by_contacts_7d"]) == len(frame)
    assert sum(r["decisions"] for r in out["by_period_and_trigger"]) == len(frame)
    con = connect(tiny.warehouse_path, read_only=True)
    try:
        contacted = con.execute("SELECT count(*) FROM decisions WHERE experiment IN ('historical', 'frequency_test') AND contacted").fetchone()[0]
    finally:
        con.close()
    # Every contacted decision of the randomised history, at the pressure it had when it was made.
    assert int(support.sum()) == contacted
    assert {r["pressure"]: r["historical_contacts"] for r in out["by_contacts_7d"]} == {
        r["pressure"]: int(support.get(r["pressure"], 0)) for r in out["by_contacts_7d"]
    }
