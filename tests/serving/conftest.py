"""Fixtures of the serving tests: a small trained workspace and real servers.

The workspace is built once per session with the real CLI (generate, features,
train); each server is ``nextbest serve`` in a subprocess on a free loopback
port, stopped (or killed) by process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from nextbest.serving.process import stop_tree, wait_ready
from nextbest.workspace import Workspace

#: The installed console script, next to the interpreter running the tests.
NEXTBEST = [str(Path(sys.executable).with_name("nextbest"))]
TOKEN = "test-token-0123456789"
CUSTOMERS = 1500
DAYS = 90
#: Customers whose `nextbest rank --json` answer the parity test compares with the service's.
PARITY_CUSTOMERS = (3, 11, 42)
PARITY_SEED = 5


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker; declare it too so `-p no:xdist` runs stay strict-clean.
    config.addinivalue_line("markers", "xdist_group(name): run in one xdist worker with the group's other tests")


def run_cli(ws: Path, *args: str, timeout: float = 600) -> str:
    """Run the real CLI against ``ws``; returns stdout, fails the test on a non-zero exit."""
    # The workspace's own registry, named explicitly: MLflow resolves `models:/` URIs
    # through its process-wide registry URI, which this makes point at the workspace.
    env = {**os.environ, "NEXTBEST_WORKSPACE": str(ws), "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}"}
    done = subprocess.run(
        [*NEXTBEST, "--workspace", str(ws), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise AssertionError(f"nextbest {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


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


@pytest.fixture(scope="session")
def private_tmp() -> Iterator[Path]:
    """A temporary folder of this session only.

    Not pytest's ``tmp_path_factory``: pytest keeps the last three base folders of
    *any* run, so a colleague's concurrent run could delete a workspace a server is using.
    """
    root = Path(tempfile.mkdtemp(prefix="nextbest-serving-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def trained_workspace(private_tmp: Path) -> TrainedWorkspace:
    """Built with the real CLI, or copied from ``$NEXTBEST_SERVING_TEST_WORKSPACE`` (a trained
    workspace, to iterate on these tests without regenerating it)."""
    root = private_tmp / "trained"
    prebuilt = os.environ.get("NEXTBEST_SERVING_TEST_WORKSPACE")
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
    ws = TrainedWorkspace(root=root, as_of=as_of.isoformat())
    for cid in PARITY_CUSTOMERS:
        out = run_cli(root, "rank", "--customer-id", str(cid), "--seed", str(PARITY_SEED), "--at", ws.as_of, "--json")
        ws.cli_rank[cid] = json.loads(out)
    return ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``nextbest serve`` in a subprocess (its own process group)."""

    def __init__(self, ws: Path, *, token: str | None = None, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.ws = ws
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.log_path = ws.parent / f"server-{self.port}.log"
        environ = {**os.environ, "NEXTBEST_WORKSPACE": str(ws), **(env or {})}
        environ.pop("MLFLOW_TRACKING_URI", None)
        environ.pop("NEXTBEST_API_TOKEN", None)
        if token:
            environ["NEXTBEST_API_TOKEN"] = token
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*NEXTBEST, "--workspace", str(ws), "serve", "--port", str(self.port), "--workers", str(workers)],
            env=environ, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 240) -> Server:
        if wait_ready(self.proc, self.url, timeout):
            return self
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        self.stop()
        raise AssertionError(f"server not ready within {timeout} s:\n{self.log()[-3000:]}")

    def client(self, *, token: str | None = None) -> httpx.Client:
        token = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        stop_tree(self.proc, sig, timeout)
        self._log.close()


@pytest.fixture(scope="module")
def server(trained_workspace: TrainedWorkspace, private_tmp: Path) -> Iterator[Server]:
    """One authenticated server on a copy of the trained workspace, shared by a module."""
    ws = trained_workspace.copy(Path(tempfile.mkdtemp(dir=private_tmp)) / "ws")
    srv = Server(ws.root, token=TOKEN).wait_ready()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
