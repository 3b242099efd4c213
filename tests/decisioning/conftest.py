"""Fixtures of the decisioning tests: the default config, a real fitted scorer, feature frames."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.decisioning.decisioning_helpers import fitted_scorer

from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.synthetic import random_features
from nextbest.models.response import ResponseModel


@pytest.fixture(scope="session")
def config() -> NextbestConfig:
    return load_config()


@pytest.fixture(scope="session")
def scorer() -> ResponseModel:
    return fitted_scorer()


@pytest.fixture
def features(config: NextbestConfig) -> pd.DataFrame:
    return random_features(config, 300, seed=3)
