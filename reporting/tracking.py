"""Log report runs to MLflow so results stay findable next to the models.

Uses an explicit :class:`mlflow.MlflowClient` bound to the workspace's tracking
URI instead of the global ``mlflow.set_tracking_uri``, so a report never
changes where another component in the same process logs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from nextbest.workspace import Workspace

#: MLflow experiment of A/B analyses.
AB_EXPERIMENT = "ab-tests"
#: MLflow experiment of uplift reports.
REPORTS_EXPERIMENT = "reports"

# MLflow limits: metric keys to these characters, params to 6000 characters.
_MAX_METRICS_PER_BATCH = 1000
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /")


def _key(name: str) -> str:
    return "".join(c if c in _SAFE else "_" for c in name)


def experiment_id(client: MlflowClient, ws: Workspace, name: str) -> str:
    """Id of experiment ``name``, created if absent with its artifacts under ``$NEXTBEST_ARTIFACT_ROOT``
    or else the workspace."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = ws.artifact_location(name)
    if location is None:  # a user's tracking server: the reports' artifacts stay in the workspace, as before
        ws.mlartifacts_dir.mkdir(parents=True, exist_ok=True)
        location = (ws.mlartifacts_dir / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def log_run(
    ws: Workspace,
    experiment: str,
    *,
    run_name: str,
    metrics: Mapping[str, float],
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    artifacts: Sequence[Path] = (),
) -> str:
    """Log one finished run; returns its run id.

    Parameters
    ----------
    ws
        Workspace (its ``tracking_uri`` and ``mlartifacts`` folder).
    experiment
        MLflow experiment name, e.g. :data:`AB_EXPERIMENT`.
    run_name
        Human-readable run name.
    metrics, params, tags
        Logged in one batch; metric names are made MLflow-safe.
    artifacts
        Files uploaded to the run's artifact root.
    """
    client = MlflowClient(tracking_uri=ws.tracking_uri)
    exp_id = experiment_id(client, ws, experiment)
    run = client.create_run(exp_id, run_name=run_name, tags=dict(tags or {}))
    now = int(time.time() * 1000)
    try:
        client.log_batch(
            run.info.run_id,
            params=[Param(_key(k), str(v)[:6000]) for k, v in (params or {}).items()],
            tags=[RunTag("nextbest.component", "reporting")],
        )
        batch = [Metric(_key(k), float(v), now, 0) for k, v in metrics.items()]
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            client.log_batch(run.info.run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH])
        for path in artifacts:
            client.log_artifact(run.info.run_id, str(path))
    except BaseException:
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id
