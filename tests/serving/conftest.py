"""Fixtures of the serving tests: real servers on copies of the trained workspace.

The workspace (``trained_workspace``, tests/conftest.py) is built once per session
with the real CLI (generate, features, train); each server is ``nextbest serve`` in a
subprocess on a free loopback port, stopped (or killed) by process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nextbest.serving.process import stop_tree, wait_ready
from tests.trained_world import (  # noqa: F401 - the serving tests import these from here
    CUSTOMERS,
    DAYS,
    NEXTBEST,
    PARITY_CUSTOMERS,
    PARITY_SEED,
    TrainedWorkspace,
    run_cli,
)

TOKEN = "test-token-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker; declare it too so `-p no:xdist` runs stay strict-clean.
    config.addinivalue_line("markers", "xdist_group(name): run in one xdist worker with the group's other tests")


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
        """Stop (or with ``SIGKILL``, kill) the server; once: a second call does nothing, not even
        look up the process id, which another process may have been given meanwhile."""
        if self._log.closed:
            return
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
