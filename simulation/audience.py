"""Who is decided for on a simulated day: the day's campaign sample and the triggered customers.

A real deployment ranks customers when something prompts it: a scheduled
campaign picks part of the base, and events (a birthday coming up, a move, a
contract ending) trigger a decision. The simulator does the same each day:

* **campaign**: a ``campaign_share`` of the known customers, drawn by a salted
  hash of (seed, day, customer), so every policy decides for the same customers
  on the same day;
* **triggers**: every customer for whom a configured trigger event
  (``policy.triggers[].event``) has just begun: true in today's feature row,
  not in the row of the day before (:class:`EventOnsets`), unless one of the
  trigger's offers went out to them within its ``refire_cooldown_days``. An
  event prompts one decision at its onset, as event-driven marketing does, not
  one a day for as long as the event lasts.

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


class EventOnsets:
    """Which trigger events began since the last look: on now, off (or unknown) in the previous feature rows.

    Keeps, per trigger, the customers whose event was on at the last :meth:`update`.
    The first look counts every event that is on as begun (nothing was seen before it).
    """

    def __init__(self) -> None:
        self._on: list[np.ndarray] | None = None

    def update(self, features: pd.DataFrame, config: NextbestConfig) -> np.ndarray:
        """(n, T) whether each trigger's event began for each feature row since the previous call."""
        ids = features["customer_id"].to_numpy(np.int64)
        on = [_event_on(features, t.event) for t in config.policy.triggers]
        began = np.zeros((len(ids), len(on)), dtype=bool)
        for t_idx, now in enumerate(on):
            before = np.isin(ids, self._on[t_idx]) if self._on is not None else np.zeros(len(ids), dtype=bool)
            began[:, t_idx] = now & ~before
        self._on = [ids[now] for now in on]
        return began


def _event_on(features: pd.DataFrame, event: str) -> np.ndarray:
    if event not in features.columns:
        return np.zeros(len(features), dtype=bool)
    return features[event].astype("boolean").fillna(False).to_numpy(dtype=bool)


def audience(
    features: pd.DataFrame, config: NextbestConfig, *, day: int, share: float, seed: int,
    triggered: np.ndarray | None = None,
) -> pd.DataFrame:
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
    triggered
        (n,) whether a trigger fires for each row today (:class:`EventOnsets`, less the
        cool-downs); ``None``: every row with a trigger event on (:func:`trigger_mask`).
    """
    ids = features["customer_id"].to_numpy(np.int64)
    fired = triggered if triggered is not None else trigger_mask(features, config)
    chosen = campaign_mask(ids, day, share, seed) | fired
    return features.loc[chosen].reset_index(drop=True)
