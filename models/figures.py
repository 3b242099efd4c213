"""Matplotlib figures logged with each training run (PNG, headless backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklift.metrics import perfect_qini_curve, qini_curve  # noqa: E402

from nextbest.models.metrics import reliability_table, sklift_quietly  # noqa: E402


def calibration_figure(y: np.ndarray, curves: dict[str, np.ndarray], n_bins: int = 10) -> Figure:
    """Reliability curves (observed rate vs mean prediction, equal-count bins) of several predictions."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for label, p in curves.items():
        table = reliability_table(y, p, n_bins)
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=label)
        top = max(top, table["mean_predicted"].max(), table["observed_rate"].max())
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed response rate")
    ax.set_title("Reliability (test set)")
    ax.legend()
    fig.tight_layout()
    return fig


def qini_figure(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> Figure:
    """Qini curve of the predicted uplift against random targeting and the perfect model (sklift)."""
    y = np.asarray(y).astype(int)
    t = np.asarray(treatment).astype(int)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.set_title("Qini curve (test set)")
    if t.min() == t.max():
        # A policy without a control arm (e.g. a closed loop's champion) logs one arm only: no curve exists.
        arm = "contacted" if t.max() == 1 else "held-out"
        ax.text(0.5, 0.5, f"Only {arm} decisions in the test period:\nno Qini curve without both arms.",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    with sklift_quietly():
        x, q = qini_curve(y, uplift, t)
        xp, qp = perfect_qini_curve(y, t)
    ax.plot(x, q, label="model")
    ax.plot(xp, qp, label="perfect", alpha=0.6)
    ax.plot([0, x[-1]], [0, q[-1]], linestyle="--", color="grey", label="random")
    ax.set_xlabel("customers targeted (by predicted uplift)")
    ax.set_ylabel("incremental responses")
    ax.legend()
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.Series, top: int = 25) -> Figure:
    """Horizontal bars of the ``top`` features by gain."""
    data = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, max(3.0, 0.28 * len(data) + 1)))
    ax.barh(data.index.astype(str), data.to_numpy())
    ax.set_xlabel(f"importance ({importance.name or 'gain'})")
    ax.set_title("Feature importance")
    fig.tight_layout()
    return fig
