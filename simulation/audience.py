"""Who is decided for on a simulated day: the day's campaign sample and the triggered customers.

A real deployment ranks customers when something prompts it: a scheduled
campaign picks part of the base, and events (a birthday coming up, a move, a
contract ending) trigger a decision. The simulator does the same each day:

* **campaign**: a ``campaign_share`` of the known customers, drawn by a salted
  hash of (seed, day, customer), so every policy decides for the same customers
  on the same day;
* **triggers**: every customer whose feature row has one of the configured
  trigger events (``policy.triggers[].event``) true.

Triggered customers depend on the policy's own world (a policy that engages a
customer changes what they do), which is part of what is being compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.hashing import key_of, uniform


def campaign_mask(customer_ids: np.ndarray, day: int, share: float, seed: int) -> np.ndarray:
    """Whether each customer is in the campaign of ``day`` (independent of any policy)."""
    return uniform(np.asarray(customer_ids, dtype=np.int64), key_of("simulation.campaign", seed, day)) < share


def trigger_mask(features: pd.DataFrame, config: NextbestConfig) -> np.ndarray:
    """Whether any configured trigger event is true in each feature row (unknown = false)."""
    hit = np.zeros(len(features), dtype=bool)
    for event in dict.fromkeys(t.event for t in config.policy.triggers):
        if event in features.columns:
            hit |= features[event].fillna(False).to_numpy(dtype=bool)
    return hit


def audience(features: pd.DataFrame, config: NextbestConfig, *, day: int, share: float, seed: int) -> pd.DataFrame:
    """The feature rows of the customers to decide for on ``day`` (campaign ∪ triggers).

    Parameters
    ----------
    features
        Current feature snapshot (one row per known customer).
    config
        Gives the trigger events.
    day
        Simulation day offset (keys the campaign draw).
    share
        Share of customers in the daily campaign, in [0, 1].
    seed
        Simulation seed.
    """
    ids = features["customer_id"].to_numpy(np.int64)
    chosen = campaign_mask(ids, day, share, seed) | trigger_mask(features, config)
    return features.loc[chosen].reset_index(drop=True)
