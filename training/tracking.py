"""MLflow set-up and logging helpers shared by training, tuning and promotion."""

from __future__ import annotations

import os

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure

from nextbest.workspace import Workspace

#: MLflow experiment of the response-model family (each `nextbest train` is a run in it).
RESPONSE_EXPERIMENT = "nextbest-response"


def use_workspace(ws: Workspace) -> str:
    """Point MLflow at the workspace's tracking store; returns the URI.

    With the embedded sqlite store, artifacts go to ``workspace/mlartifacts``
    rather than ``./mlruns`` of wherever the command was started.
    """
    uri = ws.tracking_uri
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which Workspace reads as
    # a user override: left set, every later workspace in this process would log here.
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return uri


def ensure_experiment(ws: Workspace, name: str = RESPONSE_EXPERIMENT) -> str:
    """Create the experiment if absent (artifacts where :meth:`Workspace.artifact_location` says); return its id.

    The location is absolute, as MLflow stores every local one; a copied or moved
    workspace has it rewritten when opened (:mod:`nextbest.relocation`).
    """
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return mlflow.create_experiment(name, artifact_location=ws.artifact_location(name))


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log finite metrics (MLflow rejects NaN in some stores; a NaN says "not computable")."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))})


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters, stringifying sequences (MLflow params are strings of at most 6000 chars)."""
    mlflow.log_params({k: (",".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in params.items()})


def log_figure(fig: Figure, name: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, f"figures/{name}.png")
    plt.close(fig)


def log_frame(frame: pd.DataFrame, name: str) -> None:
    """Log a small table as CSV (aggregates only: never customer rows)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.csv"
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="tables")
