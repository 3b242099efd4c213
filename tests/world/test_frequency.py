"""The randomised contact-frequency test in the generated history: cells, holdouts, propensities."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from nextbest.world import World
from nextbest.world.frequency import EXPERIMENT, enrolled, running, scheduled
from nextbest.world.params import WorldParams

from .conftest import DAYS


def _test_rows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "SELECT decision_id, customer_id, ts, offer_id, channel, arm, propensity, contacted "
        f"FROM decisions WHERE experiment = '{EXPERIMENT}'"
    ).df()


def test_cells_weeks_and_holdouts_follow_the_design(generated: tuple[World, Path, dict[str, int]], con) -> None:
    world, _, _ = generated
    p = world.params
    assert p.frequency_start_day + 7 * p.frequency_weeks <= DAYS  # the whole test lies in the fixture's history
    rows = _test_rows(con)
    assert len(rows) > 0 and rows["decision_id"].str.startswith("freq-").all()
    start = pd.Timestamp(world.start)
    rows["day"] = (rows["ts"].dt.normalize() - start).dt.days
    assert rows["day"].between(p.frequency_start_day, p.frequency_start_day + 7 * p.frequency_weeks - 1).all()

    # Arms: freq<k> contacted, freq<k>_control held out; one cell per customer, the one it was assigned.
    rows["cell"] = rows["arm"].str.extract(r"^freq(\d)")[0].astype(int)
    held = rows["arm"].str.endswith("_control")
    assert (rows["contacted"] == ~held).all()
    assert (rows.groupby("customer_id")["cell"].nunique() == 1).all()
    inside, cell, first = enrolled(world.population, world.seed, p)
    pos = world.population.positions(rows["customer_id"].to_numpy())
    assert (cell[pos] == rows["cell"].to_numpy()).all()

    # Enrolment: the configured share of customers active at the start, the cells about equal.
    active = world.population.join_day <= p.frequency_start_day
    assert abs(inside.sum() / active.sum() - p.frequency_share) < 0.04
    counts = pd.Series(cell[inside]).value_counts(normalize=True)
    assert set(counts.index) == set(p.frequency_cells) and (counts > 0.2).all()

    # k decisions in each of the test's weeks, on the cell's days.
    rows["week"] = (rows["day"] - p.frequency_start_day) // 7
    per_week = rows.groupby(["customer_id", "week"]).agg(n=("day", "size"), cell=("cell", "first"))
    assert (per_week["n"] == per_week["cell"]).mean() > 0.98
    on_day = np.array([scheduled(int(d), cell[[i]], first[[i]], p)[0] for d, i in zip(rows["day"], pos, strict=True)])
    assert on_day.all()

    # Each cell has its own holdout, at the configured share.
    share = held.groupby(rows["cell"]).mean()
    assert ((share - p.frequency_holdout_share).abs() < 0.08).all(), share.to_dict()
    assert (held.groupby(rows["cell"]).sum() > 10).all()


def test_propensities_are_one_over_the_pairs_the_customer_could_get(generated, con) -> None:
    """Where the customer's consent never changed during the history, the logged propensity is exactly
    1 / the (offer, channel) pairs valid that day on channels they are reachable on."""
    world, _, _ = generated
    rows = _test_rows(con)
    changed = set(con.execute(
        "SELECT DISTINCT d.customer_id FROM responses r JOIN decisions d USING (decision_id) WHERE r.outcome = 'unsubscribe' "
        "UNION SELECT customer_id FROM life_events WHERE event_type = 'newsletter_signup'"
    ).df()["customer_id"])
    rows = rows[~rows["customer_id"].isin(changed)]
    assert len(rows) > 100
    cat = world.catalogue
    pos = world.population.positions(rows["customer_id"].to_numpy())
    reach = cat.reachable(world.population, pos)
    day = (rows["ts"].dt.normalize() - pd.Timestamp(world.start)).dt.days.to_numpy()
    valid = (cat.offer_from[None, :] <= day[:, None]) & (day[:, None] <= cat.offer_to[None, :])
    n_allowed = (reach[:, cat.pair_channel] & valid[:, cat.pair_offer]).sum(axis=1)
    np.testing.assert_allclose(rows["propensity"].to_numpy(), 1.0 / n_allowed)


def test_enrolled_customers_skip_the_weekly_campaign_while_the_test_runs(generated, con) -> None:
    world, _, _ = generated
    p = world.params
    inside, _, _ = enrolled(world.population, world.seed, p)
    ids = world.population.customer_id[inside]
    hist = con.execute("SELECT customer_id, ts FROM decisions WHERE experiment = 'historical'").df()
    day = (hist["ts"].dt.normalize() - pd.Timestamp(world.start)).dt.days
    during = np.array([running(int(d), p) for d in day])
    assert during.any() and not hist.loc[during, "customer_id"].isin(ids).any()
    assert hist.loc[~during, "customer_id"].isin(ids).any()  # outside the test they are ordinary customers


def test_no_test_without_share() -> None:
    assert not running(30, WorldParams(frequency_share=0.0))
    assert running(30, WorldParams()) and not running(27, WorldParams()) and not running(56, WorldParams())
