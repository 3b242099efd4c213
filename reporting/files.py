"""Where reports are written, and finding the newest one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nextbest.workspace import Workspace


def report_path(ws: Workspace, kind: str, suffix: str = ".html") -> Path:
    """A fresh, timestamped path in the workspace's reports folder, e.g. ``reports/uplift-20240301-101500.html``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return ws.reports_dir / f"{kind}-{stamp}{suffix}"


def latest_report(ws: Workspace, kind: str | None = None) -> Path | None:
    """The most recently written HTML report, or ``None`` when there is none.

    Parameters
    ----------
    ws
        Workspace whose ``reports/`` folder is searched.
    kind
        Only reports whose file name starts with this (``'uplift'``, ``'ab'``); ``None`` = any.
    """
    if not ws.reports_dir.is_dir():
        return None
    pattern = f"{kind}*.html" if kind else "*.html"
    found = [p for p in ws.reports_dir.glob(pattern) if p.is_file()]
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name)) if found else None
