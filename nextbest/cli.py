"""The ``nextbest`` command line.

Each subpackage contributes its commands through a ``cli`` module exposing
``register(app)``; this module owns only the global ``--workspace`` option,
``init`` and the mapping of errors to exit codes (0 ok, 2 bad input, 1 failure).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from nextbest import logfile
from nextbest.errors import NextbestError
from nextbest.clitools import data_app, workspace_of
from nextbest.workspace import ENV_VAR, Workspace

app = typer.Typer(
    name="nextbest",
    help="Open-source next-best-action decisioning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Order is the order of `nextbest --help`: the data flow, raw tables to decisions and back.
COMMAND_MODULES: tuple[str, ...] = (
    "nextbest.warehouse.cli",
    "nextbest.live.cli",
    "nextbest.offers_cli",
    "nextbest.world.cli",
    "nextbest.features.cli",
    "nextbest.training.cli",
    "nextbest.decisioning.cli",
    "nextbest.serving.cli",
    "nextbest.reporting.cli",
    "nextbest.simulation.cli",
    "nextbest.warehouse.hillstrom_cli",
)


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", envvar=ENV_VAR, help="Workspace folder (default ./workspace)."),
    ] = None,
) -> None:
    ctx.obj = Workspace.resolve(workspace)
    if _route_library_output:
        logfile.route_library_output(ctx.obj.root)


@app.command()
def init(
    ctx: typer.Context,
    overwrite: Annotated[bool, typer.Option(help="Replace existing config files.")] = False,
) -> None:
    """Create the workspace and write the commented example configuration."""
    ws = workspace_of(ctx)
    written = ws.init_config(overwrite=overwrite)
    ws.config()  # validate what is there now, including files the user already had
    typer.echo(f"workspace: {ws.root}")
    for p in written:
        typer.echo(f"  wrote {p.relative_to(ws.root)}")
    if not written:
        typer.echo("  config already present (use --overwrite to replace it)")


app.add_typer(data_app, name="data")


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that subpackage has no commands (yet)
                continue
            raise
        module.register(app)


_register_all()

#: Set by :func:`main`: the real command line sends library messages to the workspace's
#: log file; ``app`` invoked in-process (tests, notebooks) leaves the host's logging alone.
_route_library_output = False


def main() -> None:
    """Entry point: run the app, mapping nextbest errors to messages and exit codes.

    Usage errors (unknown option, wrong type) are handled by click itself in
    standalone mode and exit with 2; nextbest's own errors carry their exit code.
    """
    global _route_library_output
    _route_library_output = True
    try:
        app()
    except NextbestError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    finally:
        if (line := logfile.pointer()) is not None:
            typer.echo(line, err=True)
