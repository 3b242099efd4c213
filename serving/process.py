"""Waiting for, and stopping, a ``nextbest serve`` process started by another program (simulator, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import psutil


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float, poll_s: float = 0.5) -> bool:
    """Poll ``{url}/readyz`` until it answers 200.

    Returns
    -------
    bool
        True once ready; False when the process exited or ``timeout_s`` passed
        (``proc.poll()`` tells the two apart), so each caller raises its own error.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(poll_s)
    return False


def stop_tree(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
    """Send ``sig`` to a server started with ``start_new_session=True``, then end whatever is left.

    The server's process group gets ``sig``; after ``timeout_s`` (or at once when
    the leader is gone) every process that was in its tree is killed. BentoML
    workers start a session of their own, so the group alone misses them: a
    ``SIGKILL`` of the leader would leave a worker holding the port and the model.
    """
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=10)
    proc.wait()
