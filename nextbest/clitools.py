"""Helpers shared by the subpackages' command modules."""

from __future__ import annotations

import json
from typing import Any

import typer

from nextbest.workspace import Workspace

#: ``nextbest data ...``: shared by the warehouse (import, quality, forget, summary)
#: and the synthetic world (generate), so both register into one group.
data_app = typer.Typer(help="Load, generate, check and erase warehouse data.", no_args_is_help=True)


def workspace_of(ctx: typer.Context) -> Workspace:
    """The workspace chosen by the global ``--workspace`` option."""
    ws = ctx.find_root().obj
    if not isinstance(ws, Workspace):  # a sub-app invoked on its own
        ws = Workspace.resolve(None)
    return ws


def echo_json(document: Any) -> None:
    """Print a JSON document (dates and numpy scalars made serialisable)."""
    typer.echo(json.dumps(document, indent=2, default=_default))


def _default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "item"):
        return o.item()
    return str(o)
