"""Waiting for a ``nextbest serve`` process started by another program (simulator, tests, benchmarks)."""

from __future__ import annotations

import subprocess
import time

import httpx


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
