"""``nextbest retrain``: the scheduled learning step of a served workspace, on a tiny real world."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.features.snapshots import snapshot_dates
from nextbest.models.registry import get_version, list_versions
from nextbest.serving.runtime import REFRESH_STAMP
from nextbest.simulation.demo import ensure_features
from nextbest.training.retrain import RetrainOptions, retrain, retrain_lock
from nextbest.training.trainer import TrainOptions, train
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from nextbest.world import World

NEXTBEST = [str(Path(sys.executable).with_name("nextbest"))]


@pytest.fixture(scope="module")
def served_template(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A 300-customer world with 60 days of history, a snapshot and a champion."""
    ws = Workspace(tmp_path_factory.mktemp("retrain") / "ws")
    ws.init_config()
    world = World.create(300, seed=5, config=ws.config())
    con = connect(ws.warehouse_path)
    try:
        world.write_history(con, 60)
    finally:
        con.close()
    ensure_features(ws, lambda _msg: None)
    train(ws, TrainOptions(run_name="first"))
    return ws


@pytest.fixture
def served(served_template: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copytree(served_template.root, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def _invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--workspace", str(ws.root), *args], standalone_mode=False, catch_exceptions=True)


def _latest_snapshot(ws: Workspace) -> pd.Timestamp:
    con = connect(ws.warehouse_path, read_only=True)
    try:
        return max(snapshot_dates(con))
    finally:
        con.close()


def test_retrain_builds_todays_snapshot_trains_gates_and_tells_the_services(served: Workspace) -> None:
    today = _latest_snapshot(served) + pd.Timedelta(days=1)
    stamp = served.artifacts_dir / REFRESH_STAMP
    assert not stamp.exists()
    result = _invoke(served, "retrain", "--as-of", str(today.date()))
    assert result.exception is None, result.output
    (line,) = result.stdout.strip().splitlines()  # one summary line for the scheduler's log
    assert line.startswith("retrain: synced 0 live rows; ")
    assert f"snapshot {today.date()} built" in line and "trained nextbest-response/2 on " in line
    assert _latest_snapshot(served) == today
    champion = get_version(served.tracking_uri, "champion")
    assert [v.label for v in list_versions(served.tracking_uri)] == ["nextbest-response/2", "nextbest-response/1"]
    verdict = "promoted" if champion.version == "2" else "kept champion"
    assert f"{verdict} (champion {champion.label}): " in line
    # The snapshot changed: every worker of a running `nextbest serve` reloads within a second.
    assert stamp.exists() and "services told to refresh" in line
    before = stamp.stat().st_mtime_ns

    again = _invoke(served, "retrain", "--as-of", str(today.date()), "--json")
    assert again.exception is None, again.output
    report = json.loads(again.stdout)
    assert report["snapshot"] == str(today.date()) and report["snapshot_built"] is False
    assert report["version"] == "nextbest-response/3" and report["training_rows"] > 100
    assert report["announced"] is (report["promoted"] is True)
    assert (stamp.stat().st_mtime_ns != before) is report["announced"]


def test_a_second_concurrent_retrain_does_nothing_and_says_why(served: Workspace) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": served.tracking_uri}
    with retrain_lock(served):  # a first run holds the lock (another process's view of it)
        done = subprocess.run(
            [*NEXTBEST, "--workspace", str(served.root), "retrain"], env=env, capture_output=True, text=True, timeout=300,
        )
        with pytest.raises(Exception, match="another retraining is running"):
            retrain(served, RetrainOptions())
    assert done.returncode == 75, done.stderr
    assert f"error: another retraining is running on {served.root} (pid {os.getpid()} since " in done.stderr
    assert "this one did nothing" in done.stderr
    assert [v.label for v in list_versions(served.tracking_uri)] == ["nextbest-response/1"]
    # Released: the next scheduled run goes ahead.
    assert retrain(served, RetrainOptions(snapshot=False)).version == "nextbest-response/2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "someday"], "--as-of: 'someday' is not a date or timestamp; use e.g. 2024-06-30"),
        (["--as-of", "2024-06-03T10:30"], "--as-of 2024-06-03 10:30:00: give a date (a snapshot is taken at midnight)"),
        (["--tune", "-1"], "greater than or equal to 0"),
    ],
)
def test_bad_retrain_input_is_exit_code_2_and_trains_nothing(served: Workspace, args: list[str], message: str) -> None:
    result = _invoke(served, "retrain", *args)
    assert getattr(result.exception, "exit_code", None) == 2
    assert message in str(result.exception)
    assert [v.label for v in list_versions(served.tracking_uri)] == ["nextbest-response/1"]
