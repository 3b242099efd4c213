"""A small trained workspace built with the real CLI (generate, features, train), plus the
CLI's own answers for a few customers.

Built once per session by the ``trained_workspace`` fixture (tests/conftest.py) and
shared by the tests that serve it: the serving tests and the simulation through the
real HTTP service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nextbest.workspace import Workspace

#: The installed console script, next to the interpreter running the tests.
NEXTBEST = [str(Path(sys.executable).with_name("nextbest"))]
CUSTOMERS = 1500
DAYS = 90
#: Customers whose `nextbest rank --json` answer the parity test compares with the service's.
PARITY_CUSTOMERS = (3, 11, 42)
PARITY_SEED = 5


def cli_env(ws: Path) -> dict[str, str]:
    """The environment of a CLI call on ``ws``."""
    # The workspace's own registry, named explicitly: MLflow resolves `models:/` URIs
    # through its process-wide registry URI, which this makes point at the workspace.
    return {**os.environ, "NEXTBEST_WORKSPACE": str(ws), "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}"}


def run_cli(ws: Path, *args: str, timeout: float = 600) -> str:
    """Run the real CLI against ``ws``; returns stdout, fails the test on a non-zero exit."""
    done = subprocess.run(
        [*NEXTBEST, "--workspace", str(ws), *args], env=cli_env(ws), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise AssertionError(f"nextbest {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def ranked_by_cli(ws: Path, customer_ids: tuple[int, ...], seed: int, at: str) -> dict[int, dict[str, object]]:
    """``nextbest rank --json`` of each customer, the calls side by side (they only read the workspace)."""
    calls = {
        cid: subprocess.Popen(
            [*NEXTBEST, "--workspace", str(ws), "rank", "--customer-id", str(cid), "--seed", str(seed), "--at", at,
             "--json"],
            env=cli_env(ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for cid in customer_ids
    }
    answers: dict[int, dict[str, object]] = {}
    for cid, call in calls.items():
        out, err = call.communicate(timeout=600)
        if call.returncode != 0:
            raise AssertionError(f"nextbest rank --customer-id {cid} exited {call.returncode}:\n{err[-3000:]}")
        answers[cid] = json.loads(out)
    return answers


@dataclass
class TrainedWorkspace:
    """A workspace with history, a feature snapshot and a champion; plus CLI reference answers."""

    root: Path
    as_of: str
    cli_rank: dict[int, dict[str, object]] = field(default_factory=dict)

    def copy(self, target: Path) -> Workspace:
        """An independent copy (warehouse, registry, artifacts) for a test that changes state.

        Its MLflow store is relocated to ``target`` when first opened there, so the
        copy reads and writes only its own artifacts.
        """
        shutil.copytree(self.root, target, ignore=shutil.ignore_patterns("*.log"))
        return Workspace.resolve(target)


def build(root: Path, prebuilt: str | None = None) -> TrainedWorkspace:
    """Build the workspace at ``root`` with the real CLI, or copy it from ``prebuilt`` (a trained
    workspace, to iterate on the tests without regenerating it)."""
    if prebuilt:
        shutil.copytree(prebuilt, root)
    else:
        run_cli(root, "init")
        run_cli(root, "data", "generate", "--customers", str(CUSTOMERS), "--days", str(DAYS), "--seed", "11")
        run_cli(root, "features", "build")
        run_cli(root, "train")
    import duckdb

    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        as_of = con.execute("SELECT max(as_of) FROM features.customer_snapshot").fetchone()[0]
    finally:
        con.close()
    return TrainedWorkspace(root=root, as_of=as_of.isoformat(),
                            cli_rank=ranked_by_cli(root, PARITY_CUSTOMERS, PARITY_SEED, as_of.isoformat()))
