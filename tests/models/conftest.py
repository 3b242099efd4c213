"""Small synthetic frames for the estimator tests (seconds, not minutes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Candidate-like rows with a known heterogeneous contact effect.

    Returns the frame (features, offer_id, channel, contacted), the labels and
    the true uplift of each row.
    """
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "engagement_score": rng.gamma(2.0, 2.0, n),
            "age": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(18, 80, n)),
            "urbanity": rng.choice(["urban", "suburban", "rural"], n),
            "offer_id": rng.choice(["fashion_sale", "book_club", "sports_gear"], n),
            "channel": rng.choice(["email", "sms"], n),
            "contacted": rng.random(n) < 0.7,
        }
    )
    base = -3.2 + 0.25 * X["engagement_score"].to_numpy()
    effect = np.where(X["urbanity"] == "urban", 1.2, -0.2) + 0.6 * (X["channel"] == "sms").to_numpy()
    p1 = 1 / (1 + np.exp(-(base + effect)))
    p0 = 1 / (1 + np.exp(-base))
    y = (rng.random(n) < np.where(X["contacted"], p1, p0)).astype(np.int8)
    return X, y, p1 - p0


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return make_frame(12_000)
