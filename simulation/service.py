"""Run the real scoring service (``nextbest serve``) in a subprocess for a simulation or the demo.

The server gets a free loopback port and its own process group, logs to a file
in the workspace, and is stopped with SIGTERM (every answered decision is
already committed to the live store), or killed if it does not stop in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType


from nextbest.errors import NextbestError
from nextbest.serving.client import NextbestClient
from nextbest.serving.process import stop_tree, wait_ready
from nextbest.workspace import Workspace


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """``nextbest serve`` on a workspace, as a context manager.

    Parameters
    ----------
    ws
        Workspace to serve (needs a champion and a feature snapshot).
    port
        TCP port; default a free one.
    ready_timeout_s
        How long to wait for ``/readyz``.

    Raises
    ------
    NextbestError
        When the server exits or is not ready in time (with the end of its log).
    """

    def __init__(self, ws: Workspace, *, port: int | None = None, ready_timeout_s: float = 240.0) -> None:
        self.ws = ws
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout_s = ready_timeout_s
        self.log_path = ws.root / f"serve-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        env = {**os.environ, "NEXTBEST_WORKSPACE": str(self.ws.root), "NEXTBEST_LIVE_URL": self.ws.root_live_url}
        # The simulator ranks through /rank_batch only, which never reads /rank's per-customer
        # plans; planning every snapshot at each daily refresh would only slow the loop.
        env.setdefault("NEXTBEST_PLAN_CACHE", "0")
        # The simulated world's clock is not the machine's: accept its whole span (a world may start in any year).
        env.setdefault("NEXTBEST_MAX_PAST_DAYS", "36500")
        env.setdefault("NEXTBEST_MAX_FUTURE_DAYS", "3650")
        env.pop("NEXTBEST_API_TOKEN", None)  # a local, loopback-only server
        script = Path(sys.executable).with_name("nextbest")
        argv = [str(script)] if script.exists() else [sys.executable, "-c", "from nextbest.cli import main; main()"]
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [*argv, "--workspace", str(self.ws.root), "serve", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        if wait_ready(self._proc, self.url, self.ready_timeout_s):
            return self
        if self._proc.poll() is not None:
            raise NextbestError(f"the scoring service exited with {self._proc.returncode}:\n{self.log_tail()}")
        self.stop()
        raise NextbestError(f"the scoring service was not ready within {self.ready_timeout_s:.0f} s:\n{self.log_tail()}")

    def client(self) -> NextbestClient:
        """A client of this server (long timeout: batches of thousands)."""
        return NextbestClient(self.url, timeout=300.0)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM the server's process group; SIGKILL it if it is still there after ``timeout_s``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        stop_tree(proc, signal.SIGTERM, timeout_s)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
