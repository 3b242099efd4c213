"""A small generated world, its weekly DuckDB snapshots, exported as a lake: what the Spark tests compare with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.workspace import Workspace


@dataclass(frozen=True)
class WorldLake:
    """A workspace with a generated world and snapshots, and its exported lake."""

    ws: Workspace
    lake: Path
    as_of: pd.Timestamp  # a snapshot date past most of the history


def run(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="session")
def world_lake(tmp_path_factory: pytest.TempPathFactory) -> WorldLake:
    root = tmp_path_factory.mktemp("spark-world")
    ws = Workspace.resolve(root / "ws")
    ws.init_config()
    run(ws, "data", "generate", "--customers", "160", "--days", "45", "--seed", "5")
    run(ws, "features", "build", "--snapshots", "weekly", "--from", "2024-01-08", "--to", "2024-02-12")
    run(ws, "data", "export", "--output", str(root / "lake"))
    return WorldLake(ws, root / "lake", pd.Timestamp("2024-02-12"))
