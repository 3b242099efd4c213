"""Evaluation metrics of response, uplift and value predictions.

Classification metrics come from scikit-learn, uplift metrics (Qini, AUUC,
uplift@k) from scikit-uplift (``sklift.metrics``); this module only adds the
calibration error, the top-decile lift and the per-(offer, channel) breakdown.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklift.metrics import qini_auc_score, uplift_at_k, uplift_auc_score


@contextmanager
def sklift_quietly() -> Iterator[None]:
    """Silence the FutureWarning scikit-uplift triggers in scikit-learn, and only that one.

    sklift's last release calls ``sklearn.utils.extmath.stable_cumsum``, which
    scikit-learn deprecated; the warning is about sklift's code, not the user's,
    so training runs and reports should not print it once per curve.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*stable_cumsum", category=FutureWarning)
        yield


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Mean |observed rate - mean prediction| over equal-count bins, weighted by bin size.

    Equal-count (quantile) bins, not equal-width: response probabilities sit in
    a few percent, where equal-width bins would put nearly every row in one bin.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, min(n_bins, len(y)))
    return float(sum(len(b) * abs(y[b].mean() - p[b].mean()) for b in bins if len(b)) / len(y))


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Mean prediction and observed rate per equal-count bin (the reliability curve)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    rows = [(p[b].mean(), y[b].mean(), len(b)) for b in np.array_split(order, min(n_bins, max(len(y), 1))) if len(b)]
    return pd.DataFrame(rows, columns=["mean_predicted", "observed_rate", "rows"])


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Response rate of the top-scored 10 % over the overall response rate."""
    y = np.asarray(y, dtype=np.float64)
    base = y.mean()
    if base == 0:
        return float("nan")
    k = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-np.asarray(p), kind="stable")[:k]
    return float(y[top].mean() / base)


def classification_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    """AUC, log loss, Brier, expected calibration error and top-decile lift."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    both = 0 < y.sum() < len(y)
    return {
        f"{prefix}auc": float(roc_auc_score(y, p)) if both else float("nan"),
        f"{prefix}logloss": float(log_loss(y, p, labels=[0, 1])),
        f"{prefix}brier": float(brier_score_loss(y, p)),
        f"{prefix}ece": expected_calibration_error(y, p),
        f"{prefix}top_decile_lift": top_decile_lift(y, p),
        f"{prefix}positive_rate": float(y.mean()),
        f"{prefix}mean_prediction": float(p.mean()),
    }


def uplift_metrics(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Qini AUC, AUUC and uplift in the top 30 % (sklift), on randomised rows."""
    y = np.asarray(y).astype(int)
    t = np.asarray(treatment).astype(int)
    if t.min() == t.max() or y.min() == y.max():
        return {f"{prefix}qini": float("nan"), f"{prefix}auuc": float("nan"), f"{prefix}uplift_at_30": float("nan")}
    with sklift_quietly():
        return {
            f"{prefix}qini": float(qini_auc_score(y, uplift, t)),
            f"{prefix}auuc": float(uplift_auc_score(y, uplift, t)),
            f"{prefix}uplift_at_30": float(uplift_at_k(y, uplift, t, strategy="overall", k=0.3)),
        }


def calibration_by_action(frame: pd.DataFrame, p: np.ndarray, min_rows: int = 200) -> pd.DataFrame:
    """Calibration error, rows and rates per (offer, channel) pair with at least ``min_rows`` rows."""
    data = pd.DataFrame(
        {"offer_id": frame["offer_id"].to_numpy(), "channel": frame["channel"].to_numpy(),
         "y": frame["label"].to_numpy(dtype=float), "p": np.asarray(p)}
    )
    rows = []
    for (offer, channel), g in data.groupby(["offer_id", "channel"], sort=True):
        if len(g) >= min_rows:
            rows.append((offer, channel, len(g), g["y"].mean(), g["p"].mean(),
                         expected_calibration_error(g["y"].to_numpy(), g["p"].to_numpy(), n_bins=5)))
    return pd.DataFrame(rows, columns=["offer_id", "channel", "rows", "observed_rate", "mean_predicted", "ece"])


def oracle_metrics(
    y: np.ndarray,
    contacted: np.ndarray,
    true_p_contact: np.ndarray,
    true_p_control: np.ndarray,
    predicted_uplift: np.ndarray,
) -> dict[str, float]:
    """Ground-truth comparison on synthetic data.

    ``oracle_auc`` is the AUC of the true probability of each row (under the
    treatment it got): the ceiling any model can reach on these labels.
    ``uplift_spearman`` is the rank correlation of predicted and true uplift.
    """
    y = np.asarray(y).astype(int)
    truth = np.where(np.asarray(contacted, dtype=bool), true_p_contact, true_p_control)
    true_uplift = np.asarray(true_p_contact) - np.asarray(true_p_control)
    rho = spearmanr(predicted_uplift, true_uplift).statistic
    return {
        "oracle_auc": float(roc_auc_score(y, truth)) if 0 < y.sum() < len(y) else float("nan"),
        "oracle_logloss": float(log_loss(y, np.clip(truth, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "uplift_spearman": float(rho),
        "true_uplift_mean": float(true_uplift.mean()),
    }
