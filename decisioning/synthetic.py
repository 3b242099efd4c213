"""Random feature frames shaped like the feature registry, for property tests and benchmarks.

The decision engine reads a customer feature frame; these helpers draw one for
any configuration (every customer feature of the registry, with realistic
nulls), and candidate rows with responses from a known logistic truth so a real
model can be fitted on them. Customer behaviour with causal structure is the
synthetic world's job (:mod:`nextbest.world`); this is only about shapes and
edge cases: unknown ages, missing consents, invalid contacts, every stage.
:func:`fit_scorer` fits a small real model on such rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from typing import TYPE_CHECKING

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.features.registry import feature_defs

if TYPE_CHECKING:
    from nextbest.models.response import ResponseModel

_CATEGORY_LEVELS: dict[str, tuple[str, ...]] = {
    "gender": ("f", "m", "x", "unknown"),
    "urbanity": ("urban", "suburban", "rural", "unknown"),
    "region": ("north", "east", "south", "west", "unknown"),
    "journey_stage": JOURNEY_STAGES,
}


def random_features(config: NextbestConfig, n: int, seed: int = 0, *, first_id: int = 1) -> pd.DataFrame:
    """A customer feature frame of ``n`` customers with every registry customer feature.

    Parameters
    ----------
    config
        Gives the registry (channel and category names).
    n
        Customers.
    seed
        Random seed.
    first_id
        ``customer_id`` of the first row; ids are consecutive.
    """
    rng = np.random.default_rng(seed)
    defs = [d for d in feature_defs(config) if d.entity == "customer"]
    categories = sorted({o.category for o in config.offers.offers})
    channels = [c.id for c in config.channels.channels]
    columns: dict[str, object] = {"customer_id": np.arange(first_id, first_id + n, dtype=np.int64)}
    for d in defs:
        if d.dtype == "bool":
            columns[d.name] = rng.random(n) < 0.3
        elif d.dtype == "int":
            columns[d.name] = rng.poisson(3.0, n).astype(np.int64)
        elif d.dtype == "float":
            columns[d.name] = rng.gamma(2.0, 30.0, n)
        else:
            levels = _CATEGORY_LEVELS.get(d.name)
            if levels is None:
                pool = channels if "channel" in d.name else categories
                levels = (*pool, "none")
            columns[d.name] = np.asarray(levels, dtype=object)[rng.integers(0, len(levels), n)]
    frame = pd.DataFrame(columns)
    frame["age"] = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(18, 85, n))
    frame["tenure_days"] = rng.uniform(0, 2000, n)
    frame["recency_days"] = np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 400, n))
    frame["engagement_trend"] = rng.normal(0, 1, n)
    frame["distance_to_store_km"] = np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 10.0, n))
    for ch in config.channels.channels:
        if ch.personal:
            consent = pd.array(rng.random(n) < 0.6, dtype="boolean")
            consent[rng.random(n) < 0.1] = pd.NA  # unknown consent = no consent
            valid = rng.random(n) < 0.85
            frame[f"consent_{ch.id}"] = consent
            frame[f"reachable_{ch.id}"] = consent.fillna(False) & valid
        else:
            frame[f"consent_{ch.id}"] = True
            frame[f"reachable_{ch.id}"] = True
    return frame


def true_logit(candidates: pd.DataFrame, contacted: np.ndarray) -> np.ndarray:
    """Log-odds of a response in the toy truth: engagement helps, recency hurts, contact adds uplift."""
    engagement = candidates["engagement_score"].to_numpy(dtype=float)
    recency = candidates["recency_days"].fillna(365).to_numpy(dtype=float)
    offer_effect = pd.Categorical(candidates["offer_id"]).codes % 5 * 0.15
    uplift = 0.6 + 0.004 * engagement - 0.002 * recency
    return -3.5 + 0.005 * engagement - 0.003 * recency + offer_effect + contacted * uplift


def random_training_rows(config: NextbestConfig, n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Candidate rows (features, ``offer_id``, ``channel``, ``contacted``) and 0/1 responses.

    Offers and channels are drawn uniformly over the catalogue's pairs, half the
    rows contacted, responses from :func:`true_logit`.
    """
    rng = np.random.default_rng(seed)
    features = random_features(config, n, seed).drop(columns=["customer_id"])
    pairs = [(o.id, ch) for o in config.offers.offers for ch in o.channels]
    pick = rng.integers(0, len(pairs), n)
    X = features.assign(
        offer_id=[pairs[i][0] for i in pick],
        channel=[pairs[i][1] for i in pick],
        contacted=rng.random(n) < 0.5,
    )
    p = 1.0 / (1.0 + np.exp(-true_logit(X, X["contacted"].to_numpy())))
    return X, (rng.random(n) < p).astype(np.int8)


def fit_scorer(config: NextbestConfig, rows: int = 6000, seed: int = 11) -> ResponseModel:
    """A small LightGBM S-learner fitted on :func:`random_training_rows` (~0.5 s), version ``test-model/1``."""
    from nextbest.models.lgbm import LGBMResponseClassifier
    from nextbest.models.response import ResponseModel
    from nextbest.models.s_learner import SLearner

    X, y = random_training_rows(config, rows, seed=seed)
    learner = SLearner(LGBMResponseClassifier(n_estimators=15, num_leaves=7, early_stopping_rounds=None, n_jobs=1))
    model = ResponseModel(learner, calibration="none").fit(X, y)
    model.model_version = "test-model/1"
    return model
