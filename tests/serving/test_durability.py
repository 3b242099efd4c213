"""Crash and shutdown behaviour of a real server: nothing acknowledged is lost."""

from __future__ import annotations

import signal
import os
import subprocess
from pathlib import Path

import duckdb
import psutil
import pytest

from nextbest.warehouse.db import connect
from tests.serving.conftest import NEXTBEST, Server, TrainedWorkspace

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("server")]


def query(ws: Path, sql: str, params: list[object]) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(ws / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_feedback_survives_kill_9_and_decisions_survive_shutdown(
    trained_workspace: TrainedWorkspace, private_tmp: Path
) -> None:
    ws = trained_workspace.copy(private_tmp / "durability" / "ws").root
    # Decisions would wait a minute in the writer queue: only feedback or shutdown writes them.
    slow_writer = {"NEXTBEST_WRITER_INTERVAL_MS": "60000"}

    first = Server(ws, env=slow_writer).wait_ready()
    workers = psutil.Process(first.proc.pid).children(recursive=True)
    assert workers  # BentoML serves from worker processes
    with first.client() as api:
        decision = api.post("/rank", json={"customer_id": 7}).json()["decision_id"]
        ack = api.post("/feedback", json={"decision_id": decision, "outcome": "conversion", "revenue": 12.5,
                                          "timestamp": "2024-05-03T12:00:00Z"})
        assert ack.status_code == 202
    first.stop(signal.SIGKILL)  # no shutdown hook runs
    # Workers start their own session; a killed server must not leave one holding the port.
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert query(ws, "SELECT outcome, revenue FROM responses WHERE decision_id = ?", [decision]) == [("conversion", 12.5)]
    assert query(ws, "SELECT customer_id FROM decisions WHERE decision_id = ?", [decision]) == [(7,)]

    second = Server(ws, env=slow_writer).wait_ready()
    with second.client() as api:
        again = api.post("/feedback", json={"decision_id": decision, "outcome": "conversion", "revenue": 12.5,
                                            "timestamp": "2024-05-03T12:00:00Z"})
        assert again.status_code == 202 and again.json()["duplicate"] is True
        queued = [api.post("/rank", json={"customer_id": c}).json()["decision_id"] for c in (8, 9, 10)]
    second.stop(signal.SIGTERM)  # graceful: the shutdown hook flushes the queue
    written = query(ws, "SELECT decision_id FROM decisions WHERE decision_id IN (SELECT UNNEST(?))", [queued])
    assert sorted(r[0] for r in written) == sorted(queued)


def test_serve_refuses_to_start_without_a_champion(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([*NEXTBEST, "--workspace", str(ws), "init"], check=True, capture_output=True, env=env)
    connect(ws / "warehouse.duckdb").close()
    done = subprocess.run([*NEXTBEST, "--workspace", str(ws), "serve", "--port", "9"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 2
    assert "no champion model registered" in done.stderr
    assert "run `nextbest train`" in done.stderr
