"""``nextbest serve``: run the scoring service (a thin wrapper of ``bentoml serve``)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from nextbest.clitools import workspace_of
from nextbest.errors import BadInputError

#: Import path of the BentoML service, as ``bentoml serve`` and the bentofile name it.
SERVICE_PATH = "nextbest.serving.service:NextbestService"
#: The service's name in BentoML's configuration (``services.<name>.workers``).
SERVICE_NAME = "nextbest"


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root command."""
    app.command()(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the service to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 3000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (about one per CPU core).")] = 1,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Load model and features once before starting.")
    ] = True,
) -> None:
    """Start the HTTP scoring service (POST /rank, /rank_batch, /feedback; API page at /).

    Set NEXTBEST_API_TOKEN to require 'Authorization: Bearer <token>' on every
    request but the /livez and /readyz probes. Send SIGHUP to a worker or POST
    /admin/refresh to swap in a newly promoted champion without a restart.
    """
    ws = workspace_of(ctx)
    if not ws.warehouse_path.exists():
        raise BadInputError(
            f"no warehouse at {ws.warehouse_path}: run `nextbest data generate` or `nextbest data import` first"
        )
    if check:
        # Fail here, with the CLI's message and exit code, rather than in a worker
        # that BentoML would restart over and over.
        from nextbest.serving.state import preflight

        preflight(ws)
    env = dict(os.environ)
    env["NEXTBEST_WORKSPACE"] = str(ws.root)
    overrides = [o for o in env.get("BENTOML_CONFIG_OPTIONS", "").split() if o]
    overrides.append(f"services.{SERVICE_NAME}.workers={workers}")
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(overrides)
    argv = [sys.executable, "-m", "bentoml", "serve", SERVICE_PATH, "--host", host, "--port", str(port)]
    typer.echo(f"serving workspace {ws.root} on http://{host}:{port} ({workers} worker(s))", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process so signals (Ctrl-C, SIGTERM, SIGHUP) reach BentoML directly.
    os.execvpe(sys.executable, argv, env)
