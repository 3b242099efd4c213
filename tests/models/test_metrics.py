"""Uplift metrics through scikit-uplift: its deprecation noise stays inside, everything else gets out."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nextbest.models.figures import qini_figure
from nextbest.models.metrics import sklift_quietly, uplift_metrics


def _rows(n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 2, n), rng.normal(size=n), rng.integers(0, 2, n)


def test_uplift_metrics_and_the_qini_figure_emit_no_sklift_deprecation() -> None:
    y, u, t = _rows()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        metrics = uplift_metrics(y, u, t)
        qini_figure(y, u, t)
    assert set(metrics) == {"qini", "auuc", "uplift_at_30"} and all(np.isfinite(list(metrics.values())))


def test_only_the_stable_cumsum_warning_is_silenced() -> None:
    with pytest.warns(FutureWarning, match="something else"), sklift_quietly():
        warnings.warn("Function stable_cumsum is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
