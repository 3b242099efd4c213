"""The randomised contact-frequency test: how the effect of a contact changes when contacts come often.

The weekly campaigns (:mod:`nextbest.world.campaigns`) contact a customer about
once a month, so a log of them says nothing about a customer contacted twice in
a week. Direct marketers measure that with a frequency test, and so does the
world's history: when the test starts (``params.frequency_start_day``), a
random ``frequency_share`` of the active customers is enrolled and assigned,
with equal probability, to one of the cells ``frequency_cells`` (1, 2 or 3
contacts a week). For ``frequency_weeks`` weeks each enrolled customer gets a
decision on their cell's days of the week (a customer's first day at random,
the others spread over the week); the action is uniform among the pairs they
are reachable on, as in the campaigns (``propensity`` = 1 / their number).

Each cell has its own holdout: every scheduled decision is held out with
probability ``frequency_holdout_share`` (recorded, not sent: ``contacted =
false``, arm ``freq<k>_control``; the others arm ``freq<k>``). So the held-out
decisions of a cell come at that cell's contact pressure, which is what
identifies the effect of one more contact on a customer contacted often.
Enrolled customers are left out of the weekly campaigns while the test runs.
Decisions are logged with ``experiment = 'frequency_test'`` and ids
``freq-YYYYMMDD-<customer_id>``.

Every draw is keyed by (seed, stream, customer), so enrolment, cell and
weekdays are fixed for the world, independent of everything else.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from nextbest.world import rng as wr
from nextbest.world.campaigns import DECISION_COLUMNS, action_rows
from nextbest.world.params import WorldParams
from nextbest.world.population import Population
from nextbest.world.truth import Catalogue

EXPERIMENT = "frequency_test"


def running(day: int, params: WorldParams) -> bool:
    """Whether the test runs on ``day``."""
    start = params.frequency_start_day
    return params.frequency_share > 0 and start <= day < start + 7 * params.frequency_weeks


def enrolled(pop: Population, seed: int, params: WorldParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer: enrolled in the test, the cell's contacts a week (0: not enrolled), first weekday (0-6)."""
    ids = pop.customer_id
    key = wr.stream_key(seed, "frequency")
    cells = np.asarray(params.frequency_cells, dtype=np.int64)
    inside = (pop.join_day <= params.frequency_start_day) & (wr.uniforms(key, ids, 0) < params.frequency_share)
    cell = cells[np.minimum((wr.uniforms(key, ids, 1) * len(cells)).astype(np.int64), len(cells) - 1)]
    first = np.minimum((wr.uniforms(key, ids, 2) * 7).astype(np.int64), 6)
    return inside, np.where(inside, cell, 0), first


def scheduled(day: int, cell: np.ndarray, first: np.ndarray, params: WorldParams) -> np.ndarray:
    """Whether each customer of ``cell`` (contacts a week; 0 = none) has a decision on ``day``."""
    weekday = (day - params.frequency_start_day) % 7
    out = np.zeros(len(cell), dtype=bool)
    for k in np.unique(cell[cell > 0]).tolist():
        # The k days of the week, spread: first, first + 7/k, first + 2·7/k, ... (mod 7).
        days = (first[:, None] + (np.arange(k) * 7) // k) % 7
        out |= (cell == k) & (days == weekday).any(axis=1)
    return out


def frequency_decisions(
    pop: Population, day: int, *, seed: int, start: dt.date, params: WorldParams, catalogue: Catalogue
) -> pd.DataFrame:
    """The ``decisions`` rows of the frequency test on ``day`` (none outside the test's weeks)."""
    if not running(day, params):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in DECISION_COLUMNS})
    inside, cell, first = enrolled(pop, seed, params)
    pos = np.flatnonzero(inside & scheduled(day, cell, first, params))
    key = wr.stream_key(seed, "frequency", day)
    held = wr.uniforms(key, pop.customer_id[pos], 2) < params.frequency_holdout_share
    k = cell[pos].astype(str).astype(object)
    arm = np.where(held, "freq" + k + "_control", "freq" + k).astype(object)
    return action_rows(pop, pos, day, key, arm, ~held, prefix="freq", experiment=EXPERIMENT, start=start,
                       catalogue=catalogue)
