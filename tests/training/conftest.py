"""A small synthetic exposure log in a real DuckDB warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nextbest.training.dataset import TrainingSet, build_training_set
from nextbest.training.synthetic import SYNTHETIC_CATEGORICAL, SyntheticSpec, write_synthetic_log
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

SPEC = SyntheticSpec(customers=1_200, decisions=16_000, days=70, seed=3)


@pytest.fixture
def synthetic_workspace(mlflow_workspace: Workspace) -> Workspace:
    """:func:`mlflow_workspace` with :data:`SPEC`'s log in its warehouse."""
    workspace = mlflow_workspace
    con = connect(workspace.warehouse_path)
    try:
        write_synthetic_log(con, SPEC)
    finally:
        con.close()
    return workspace


@pytest.fixture
def training_set(synthetic_workspace: Workspace) -> TrainingSet:
    con = connect(synthetic_workspace.warehouse_path)
    try:
        return build_training_set(
            con, synthetic_workspace.config(), features=SPEC.features, categorical=SYNTHETIC_CATEGORICAL
        )
    finally:
        con.close()


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store with its schema created once (the migrations take ~10 s)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_workspace(workspace: Workspace, _migrated_mlflow_db: Path) -> Workspace:
    """The ``workspace`` with its own real MLflow store, copied from the pre-migrated empty one."""
    shutil.copyfile(_migrated_mlflow_db, workspace.root / "mlflow.db")
    return workspace
