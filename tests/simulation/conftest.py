"""A tiny generated workspace shared by the simulation tests (built once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nextbest.simulation.demo import ensure_features
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from nextbest.world import World

CUSTOMERS = 400
DAYS = 60
SEED = 3


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker; declare it too so `-p no:xdist` runs stay strict-clean.
    config.addinivalue_line("markers", "xdist_group(name): run in one xdist worker with the group's other tests")


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace with a 400-customer world (60 days of history) and a feature snapshot."""
    ws = Workspace(tmp_path_factory.mktemp("sim-template") / "ws")
    ws.init_config()
    world = World.create(CUSTOMERS, seed=SEED, config=ws.config())
    con = connect(ws.warehouse_path)
    try:
        world.write_history(con, DAYS)
    finally:
        con.close()
    ensure_features(ws, lambda _msg: None)
    return ws


@pytest.fixture
def tiny(tiny_template: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A private copy of the tiny workspace (simulations write into it)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "ws"
    shutil.copytree(tiny_template.root, root)
    return Workspace(root)
