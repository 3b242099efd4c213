"""Helpers shared by the decisioning tests: a real fitted scorer and config variants."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.synthetic import fit_scorer
from nextbest.features.pressure import pressure_features
from nextbest.models.response import ResponseModel


@lru_cache(maxsize=1)
def fitted_scorer() -> ResponseModel:
    """A small LightGBM S-learner fitted on rows from a known logistic truth (cached: ~0.5 s)."""
    return fit_scorer(load_config())


def with_policy(config: NextbestConfig, **changes: object) -> NextbestConfig:
    """``config`` with ``policy.<section>`` fields replaced (``contact={"max_contacts": 1}``), re-validated."""
    raw = config.model_dump()
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(raw["policy"].get(section), dict):
            raw["policy"][section].update(values)
        else:
            raw["policy"][section] = values
    return NextbestConfig.model_validate(raw)


def uncontacted(config: NextbestConfig, features: pd.DataFrame, rows: slice = slice(None)) -> pd.DataFrame:
    """``features`` whose ``rows`` have the contact pressure of a customer never contacted, as an empty contact
    history says: the engine serves them as they are (their encodings and remembered reasons hold)."""
    features = features.copy()
    for f in pressure_features(config):
        if f.name in features.columns:
            features.loc[features.index[rows], f.name] = f.default
    return features
