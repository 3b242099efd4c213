"""Both notebooks run top to bottom on a small world, so they never rot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nextbest.simulation.demo import DemoOptions, prepare
from nextbest.workspace import Workspace

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CUSTOMERS = 1500


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A generated world with a feature snapshot, copied for each notebook."""
    ws = Workspace(tmp_path_factory.mktemp("notebooks") / "template")
    prepare(ws, DemoOptions(customers=CUSTOMERS, history_days=120), lambda _m: None, model=False)
    return ws


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_uplift_and_policy_evaluation.ipynb"])
def test_notebook_runs(name: str, small_world: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(small_world.root, ws)
    monkeypatch.setenv("NEXTBEST_NOTEBOOK_WORKSPACE", str(ws))
    monkeypatch.setenv("NEXTBEST_NOTEBOOK_CUSTOMERS", str(CUSTOMERS))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert os.listdir(ws)
