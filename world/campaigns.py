"""Historical campaigns: randomised exposure with a control group, the models' training data.

Every ``campaign_every_days`` a random ``campaign_share`` of active customers is drawn.
Each gets one action chosen uniformly among the (offer, channel) pairs valid that day
that they are reachable on (consent and valid contact; the web banner always), with that
probability logged as ``propensity``. A ``control_share`` of them is held out: the
action is recorded but not sent (``contacted = false``, arm ``control``); the rest are
contacted (arm ``random``). Offer eligibility rules are deliberately ignored, so the
log covers every offer for every kind of customer.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.world import rng as wr
from nextbest.world.activity import timestamps
from nextbest.world.params import WorldParams
from nextbest.world.population import Population
from nextbest.world.truth import Catalogue

EXPERIMENT = "historical"
DECISION_COLUMNS = ("decision_id", "customer_id", "ts", "offer_id", "channel", "arm", "experiment", "propensity",
                    "model_version", "score", "contacted")


def campaign_decisions(
    pop: Population, day: int, *, seed: int, start: dt.date, params: WorldParams, catalogue: Catalogue
) -> pd.DataFrame:
    """The ``decisions`` rows of the historical campaign on ``day`` (columns of the contract).

    Customers of the contact-frequency test are left out while it runs
    (:mod:`nextbest.world.frequency`): their contacts are the test's.
    """
    from nextbest.world.frequency import enrolled, running

    ids = pop.customer_id
    key = wr.stream_key(seed, "campaign", day)
    chosen = (pop.join_day <= day) & (wr.uniforms(key, ids, 0) < params.campaign_share)
    if running(day, params):
        chosen &= ~enrolled(pop, seed, params)[0]
    pos = np.flatnonzero(chosen)
    cid = ids[pos]
    control = wr.uniforms(key, cid, 2) < params.control_share
    arm = np.where(control, "control", "random").astype(object)
    return action_rows(pop, pos, day, key, arm, ~control, prefix="hist", experiment=EXPERIMENT, start=start,
                       catalogue=catalogue)


def action_rows(
    pop: Population, pos: np.ndarray, day: int, key: np.uint64, arm: np.ndarray, contacted: np.ndarray, *,
    prefix: str, experiment: str, start: dt.date, catalogue: Catalogue,
) -> pd.DataFrame:
    """``decisions`` rows for the customers at ``pos`` on ``day``: one (offer, channel) each, uniform among the
    pairs valid that day on channels they are reachable on (``propensity`` = 1 / their number).

    ``arm`` and ``contacted`` are per customer; customers with no such pair get no row.
    Draws 1 and 3 of the stream ``key`` pick the pair and the time of day.
    """
    ids = pop.customer_id
    valid_offer = (catalogue.offer_from <= day) & (day <= catalogue.offer_to)
    reach = catalogue.reachable(pop, pos)
    allowed = reach[:, catalogue.pair_channel] & valid_offer[catalogue.pair_offer][None, :]
    n_allowed = allowed.sum(axis=1)
    keep = n_allowed > 0
    pos, allowed, n_allowed = pos[keep], allowed[keep], n_allowed[keep]
    arm, contacted = np.asarray(arm, dtype=object)[keep], np.asarray(contacted, dtype=bool)[keep]
    cid = ids[pos]

    # The k-th allowed pair of each row, k uniform in [0, n_allowed).
    k = np.floor(wr.uniforms(key, cid, 1) * n_allowed).astype(np.int64)
    pair = (np.cumsum(allowed, axis=1) > k[:, None]).argmax(axis=1)
    ts = timestamps(start, day, 9 * 3600 + wr.uniforms(key, cid, 3) * 8 * 3600)
    stamp = (np.datetime64(start, "D") + day).astype(dt.date).strftime("%Y%m%d")
    decision_id = pc.binary_join_element_wise(prefix, stamp, pa.array(cid.astype(str)), "-").to_numpy(zero_copy_only=False)
    n = len(pos)
    return pd.DataFrame(
        {
            "decision_id": decision_id,
            "customer_id": cid,
            "ts": ts,
            "offer_id": np.asarray(catalogue.offer_ids, dtype=object)[catalogue.pair_offer[pair]],
            "channel": np.asarray(catalogue.channel_ids, dtype=object)[catalogue.pair_channel[pair]],
            "arm": arm,
            "experiment": np.full(n, experiment, dtype=object),
            "propensity": 1.0 / n_allowed,
            "model_version": np.full(n, None, dtype=object),
            "score": np.full(n, np.nan),
            "contacted": contacted,
        }
    )
