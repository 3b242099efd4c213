"""A tiny simulation end to end through the real HTTP service (``--via-server``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from tests.trained_world import TrainedWorkspace

NEXTBEST = [str(Path(sys.executable).with_name("nextbest"))]


def run_cli(ws: Path, *args: str) -> str:
    """The real CLI on ``ws``; fails the test on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "NEXTBEST_API_TOKEN")}
    done = subprocess.run([*NEXTBEST, "--workspace", str(ws), *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nextbest {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.server
@pytest.mark.xdist_group("server")
def test_simulate_via_server_ranks_over_http_and_records_feedback(
    trained_workspace: TrainedWorkspace, tmp_path: Path
) -> None:
    # The serving tests' trained workspace (its champion is nextbest-response/1), copied: generating
    # and training a world of its own would only repeat what that fixture did.
    ws = trained_workspace.copy(tmp_path / "ws").root
    # On a world this small the S-learner's uplift is flat zero (it never splits on `contacted`),
    # so nothing would clear the uplift objective; ranking by response keeps the plumbing busy.
    # The objective is read when deciding, not when training: the trained champion serves either.
    policy = ws / "config" / "policy.yaml"
    policy.write_text(policy.read_text().replace("objective: uplift", "objective: response"))
    out = tmp_path / "results.json"
    # Two jobs: the served champion runs in a worker process of its own, beside `none`.
    run_cli(ws, "simulate", "--days", "3", "--policy", "champion", "--via-server", "--campaign-share", "0.04",
            "--run", "http", "--json", str(out), "--jobs", "2")

    results = {r["policy"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"champion", "none"}
    champion = results["champion"]
    assert champion["violations"] == 0
    assert sum(champion["contacts_by_channel"].values()) > 0
    assert champion["model_versions"] == ["nextbest-response/1"]

    copy = Workspace(ws / "simulations" / "http" / "champion")
    con = connect(copy.warehouse_path, read_only=True)
    try:
        logged = con.execute(
            "SELECT count(*), count(DISTINCT CAST(ts AS DATE)) FROM decisions WHERE experiment NOT IN ('historical', 'frequency_test')"
        ).fetchone()
        answered = con.execute(
            "SELECT count(*) FROM responses r JOIN decisions d USING (decision_id) WHERE d.experiment NOT IN ('historical', 'frequency_test')"
        ).fetchone()[0]
    finally:
        con.close()
    assert logged[0] == champion["decisions"] and logged[1] == 3  # the service logged every decision
    assert answered > 0  # outcomes came back through POST /feedback
    assert list(copy.root.glob("serve-*.log"))  # a real server ran on that copy
