"""Shared fixtures: a fresh workspace per test, small and fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """An initialised, empty workspace with its own MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("NEXTBEST_WORKSPACE", str(tmp_path / "ws"))
    ws = Workspace.resolve(tmp_path / "ws")
    ws.init_config()
    return ws
