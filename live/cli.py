"""``nextbest data sync``, and the sync every batch job runs first."""

from __future__ import annotations

import time
from typing import Annotated

import duckdb
import typer

import nextbest.live.erasure  # noqa: F401 - registers the live store's eraser with `data forget`
from nextbest.clitools import data_app, echo_json, workspace_of
from nextbest.errors import NextbestError
from nextbest.live.sync import SyncReport, sync
from nextbest.workspace import Workspace

#: How long a sync waits for another process's hold on the warehouse (a running batch job).
LOCK_WAIT_SECONDS = 120.0


def register(app: typer.Typer) -> None:
    """Add ``data sync`` to the shared ``data`` group (``app`` is the root, unused)."""
    data_app.command("sync")(sync_command)


def sync_command(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Copy new decisions, outcomes and consent changes from the live store into the warehouse.

    Incremental and idempotent: only rows after the warehouse's marks are read,
    and running it twice copies nothing twice. Safe beside a running service.
    """
    report = sync_live(workspace_of(ctx))
    if json:
        echo_json(report.as_dict())
    else:
        copied = ", ".join(f"{n:,} {t}" for t, n in report.copied.items())
        typer.echo(f"synced from {report.store}: {copied}; consent withdrawn for {report.consent_withdrawn:,}")


def sync_live(ws: Workspace) -> SyncReport:
    """:func:`~nextbest.live.sync.sync`, waiting while another process holds the warehouse.

    Raises
    ------
    NextbestError
        When the warehouse stayed held for :data:`LOCK_WAIT_SECONDS`.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return sync(ws)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise NextbestError(f"the warehouse is held by another process ({exc}); retry when it has finished") from exc
            time.sleep(0.2)
