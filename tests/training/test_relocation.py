"""A copied or moved workspace keeps every MLflow read and write inside itself (real store, real training)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from nextbest.config import NextbestConfig
from nextbest.decisioning.cli import load_scorers
from nextbest.models.registry import CHAMPION, MODEL_NAME, list_versions, load_scorer
from nextbest.relocation import ROOT_TABLE, recorded_root, relocate_store
from nextbest.training.dataset import TrainingSet, build_training_set
from nextbest.training.synthetic import SYNTHETIC_CATEGORICAL, write_synthetic_log
from nextbest.training.tracking import use_workspace
from nextbest.training.trainer import TrainOptions, run_training
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from tests.training.conftest import SPEC

#: Enough trees for a real bundle; the model's quality is not what these tests check.
TREES = 20


@dataclass(frozen=True)
class Trained:
    """A workspace with a registered champion (version 1), and the training set it was fitted on."""

    ws: Workspace
    data: TrainingSet

    def copy(self, target: Path) -> Workspace:
        """``cp -r`` of the workspace: the store is not opened here."""
        shutil.copytree(self.ws.root, target)
        return Workspace.resolve(target)


def small_config(ws: Workspace) -> NextbestConfig:
    config = ws.config()
    return config.model_copy(update={"training": config.training.model_copy(update={"n_estimators": TREES})})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, _migrated_mlflow_db: Path) -> Iterator[Trained]:
    """Trained once for the module: each test works on its own copy, never on this workspace."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        ws = Workspace.resolve(tmp_path_factory.mktemp("relocation") / "original")
        ws.init_config()
        shutil.copyfile(_migrated_mlflow_db, ws.mlflow_db)
        con = connect(ws.warehouse_path)
        try:
            write_synthetic_log(con, SPEC)
            data = build_training_set(con, ws.config(), features=SPEC.features, categorical=SYNTHETIC_CATEGORICAL)
        finally:
            con.close()
        result = run_training(ws, small_config(ws), data)
        assert result.champion
        yield Trained(ws, data)


@pytest.fixture(autouse=True)
def _no_tracking_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def stored_paths(db: Path) -> list[str]:
    """Every location the store holds (experiments, runs, logged models, model versions)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT artifact_location FROM experiments WHERE name != 'Default'"
            " UNION ALL SELECT artifact_uri FROM runs"
            " UNION ALL SELECT artifact_location FROM logged_models"
            " UNION ALL SELECT storage_location FROM model_versions"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def test_training_in_a_copy_writes_only_into_the_copy(trained: Trained, tmp_path: Path) -> None:
    before = listing(trained.ws.root)
    ws = trained.copy(tmp_path / "copy")

    result = run_training(ws, small_config(ws), trained.data, TrainOptions(run_name="in-the-copy"))

    assert listing(trained.ws.root) == before
    assert result.version is not None and result.version.version == "2"
    assert recorded_root(ws.mlflow_db) == ws.root
    paths = stored_paths(ws.mlflow_db)
    assert len(paths) == 7  # the experiment, and per training a run, a logged model and a model version
    assert all(p.startswith(ws.mlartifacts_dir.as_uri() + "/") for p in paths), paths
    run = MlflowClient(ws.tracking_uri).get_run(result.run_id)
    logged = Path(run.info.artifact_uri.removeprefix("file://"))
    assert logged.is_relative_to(ws.mlartifacts_dir) and (logged / "lineage.json").exists()
    # The original's registry did not get the copy's version either.
    assert [v.version for v in list_versions(trained.ws.tracking_uri)] == ["1"]


def test_a_copy_outlives_its_original(trained: Trained, tmp_path: Path) -> None:
    first = trained.copy(tmp_path / "first")
    assert relocate_store(first.root, first.mlflow_db)
    second = Workspace.resolve(shutil.copytree(first.root, tmp_path / "second"))
    shutil.rmtree(first.root)

    candidates = trained.data.frame.iloc[:300]
    expected = load_scorer(trained.ws.tracking_uri).score(candidates)
    # What `nextbest rank` and the service load (decisioning.cli.load_scorers, serving.state.build_state).
    scorers = load_scorers(second, second.config())
    assert scorers[CHAMPION].model_version == f"{MODEL_NAME}/1"
    np.testing.assert_array_equal(scorers[CHAMPION].score(candidates).to_numpy(), expected.to_numpy())
    # MLflow's own `models:/` resolution reads the copy too.
    use_workspace(second)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    predicted = pyfunc.predict(candidates[list(trained.data.feature_columns)])
    np.testing.assert_array_equal(predicted.to_numpy(), expected.to_numpy())


OPENER = """
import json, sys, time
from pathlib import Path
from nextbest.models.registry import load_scorer
from nextbest.relocation import relocate_store
from nextbest.workspace import Workspace

ws, go = Workspace.resolve(sys.argv[1]), Path(sys.argv[2])
Path(sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.005)
relocated = relocate_store(ws.root, ws.mlflow_db)
print(json.dumps({"relocated": relocated, "version": load_scorer(ws.tracking_uri).model_version}))
"""


def test_two_processes_opening_a_copy_relocate_it_once(trained: Trained, tmp_path: Path) -> None:
    ws = trained.copy(tmp_path / "copy")
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(ws.root), str(go), str(tmp_path / f"ready-{i}")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    # Both have imported MLflow and wait on the same file: they reach the store together.
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))

    assert sorted(a["relocated"] for a in answers) == [False, True]
    assert {a["version"] for a in answers} == {f"{MODEL_NAME}/1"}
    prefix = ws.mlartifacts_dir.as_uri() + "/nextbest-response"
    assert all(p.startswith(prefix) for p in stored_paths(ws.mlflow_db))


def test_a_copy_inside_the_original_is_relocated_once(trained: Trained, tmp_path: Path) -> None:
    # As a simulation replica: the new root is below the old one, so every new path
    # still starts with the old root; a second rewrite would nest it again.
    base = trained.copy(tmp_path / "base")
    assert relocate_store(base.root, base.mlflow_db)
    staged = shutil.copytree(base.root, tmp_path / "staged")
    (base.root / "simulations" / "run").mkdir(parents=True)
    nested = Workspace.resolve(shutil.move(staged, base.root / "simulations" / "run" / "champion"))
    assert relocate_store(nested.root, nested.mlflow_db)
    assert not relocate_store(nested.root, nested.mlflow_db)
    expected = nested.mlartifacts_dir.as_uri() + "/nextbest-response"
    assert all(p.startswith(expected + "/") or p == expected for p in stored_paths(nested.mlflow_db))
    assert load_scorer(nested.tracking_uri).model_version == f"{MODEL_NAME}/1"


def _forget_root(db: Path) -> None:
    """Make ``db`` look like a store from before relocation existed."""
    con = sqlite3.connect(db)
    try:
        con.execute(f'DROP TABLE "{ROOT_TABLE}"')
        con.commit()
    finally:
        con.close()


def test_a_store_without_a_record_is_relocated_when_its_artifacts_came_along(trained: Trained, tmp_path: Path) -> None:
    ws = trained.copy(tmp_path / "copy")
    _forget_root(ws.mlflow_db)
    assert relocate_store(ws.root, ws.mlflow_db)
    assert all(p.startswith(ws.mlartifacts_dir.as_uri() + "/") for p in stored_paths(ws.mlflow_db))


def test_a_store_copied_without_its_artifacts_keeps_reading_the_original(trained: Trained, tmp_path: Path) -> None:
    # How simulation replicas were made before: only mlflow.db, no mlartifacts/.
    ws = Workspace.resolve(tmp_path / "store-only").ensure()
    shutil.copyfile(trained.ws.mlflow_db, ws.mlflow_db)
    _forget_root(ws.mlflow_db)
    assert not relocate_store(ws.root, ws.mlflow_db)
    assert all(p.startswith(trained.ws.mlartifacts_dir.as_uri() + "/") for p in stored_paths(ws.mlflow_db))
    assert load_scorer(ws.tracking_uri).model_version == f"{MODEL_NAME}/1"


def test_a_users_own_tracking_uri_is_left_alone(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = trained.copy(tmp_path / "copy")
    own = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own)
    assert not ws.uses_embedded_store
    assert ws.tracking_uri == own
    assert recorded_root(ws.mlflow_db) == trained.ws.root
    # Naming the workspace's own file is still the embedded store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ws.mlflow_db}")
    assert ws.uses_embedded_store
    ws.tracking_uri  # noqa: B018 - reading it relocates
    assert recorded_root(ws.mlflow_db) == ws.root


def test_a_read_only_copy_is_read_where_its_store_points(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A workspace mounted read-only (the tests run as any user, so SQLite's read-only mode stands in).
    import nextbest.relocation as relocation

    ws = trained.copy(tmp_path / "copy")
    monkeypatch.setattr(
        relocation, "_connect",
        lambda db: sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5, isolation_level=None),
    )
    assert not relocate_store(ws.root, ws.mlflow_db)
    assert "read-only MLflow store" in caplog.text
    assert recorded_root(ws.mlflow_db) == trained.ws.root
    assert load_scorer(ws.tracking_uri).model_version == f"{MODEL_NAME}/1"
