"""``nextbest data sync``, and the sync every batch job runs first."""

from __future__ import annotations

from typing import Annotated

import typer

import nextbest.live.erasure  # noqa: F401 - registers the live store's eraser with `data forget`
from nextbest.clitools import data_app, echo_json, workspace_of
from nextbest.live.sync import SyncReport, sync
from nextbest.workspace import Workspace

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
    """:func:`~nextbest.live.sync.sync` of the workspace, as a batch job runs it first.

    Opening the warehouse waits while another process holds it (``NEXTBEST_LOCK_WAIT_S``).
    """
    return sync(ws)
