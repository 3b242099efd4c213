"""Finding the newest HTML report of the workspace (``GET /reports/latest``)."""

from __future__ import annotations

from pathlib import Path


def latest_report(reports_dir: Path) -> Path | None:
    """The most recently modified ``*.html`` file under ``reports_dir``, or None.

    Symbolic links that leave the folder are ignored, so the endpoint can only
    ever serve files the reporting commands wrote there.
    """
    if not reports_dir.is_dir():
        return None
    root = reports_dir.resolve()
    candidates = [p for p in reports_dir.rglob("*.html") if p.is_file() and p.resolve().is_relative_to(root)]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)
