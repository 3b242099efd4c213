"""``nextbest data generate``: fill a workspace's warehouse with a synthetic world."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer

from nextbest.clitools import data_app, echo_json, workspace_of
from nextbest.errors import BadInputError
from nextbest.progress import progress_bar
from nextbest.warehouse.db import connect


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the shared ``data`` group (``app`` already mounts it)."""
    data_app.command("generate")(generate)


def generate(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option("--customers", "-n", help="Number of customers.")] = 10_000,
    days: Annotated[int, typer.Option("--days", "-d", help="Days of history to simulate.")] = 180,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same tables.")] = 0,
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] = "2024-01-01",
    replace: Annotated[bool, typer.Option(help="Overwrite generated data already in the warehouse.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print row counts as JSON.")] = False,
) -> None:
    """Generate a synthetic customer world with hidden ground truth into the warehouse."""
    from nextbest.world import World  # heavy imports only when the command runs

    try:
        start_date = dt.date.fromisoformat(start)
    except ValueError as exc:
        raise BadInputError(f"--start: {start!r} is not a date; use YYYY-MM-DD, e.g. 2024-01-01") from exc
    if customers < 1:
        raise BadInputError(f"--customers must be at least 1, got {customers}")
    if days < 1:
        raise BadInputError(f"--days must be at least 1, got {days}")
    ws = workspace_of(ctx)
    if not ws.config_dir.exists():
        ws.init_config()
    ws.ensure()
    config = ws.config()

    began = time.perf_counter()
    world = World.create(customers, seed=seed, start=start_date, config=config)
    con = connect(ws.warehouse_path)
    try:
        with progress_bar() as bar:
            task = bar.add_task("generating days", total=days)
            counts = world.write_history(con, days, replace=replace, progress=lambda done: bar.update(task, completed=done))
    finally:
        con.close()
    counts = {"seconds": round(time.perf_counter() - began, 1), **counts}
    if json_out:
        echo_json(counts)
        return
    typer.echo(f"generated {customers} customers x {days} days (seed {seed}) into {ws.warehouse_path}")
    for table, n in counts.items():
        if table != "seconds":
            typer.echo(f"  {table:<16} {n:>12,}")
    typer.echo(f"  took {counts['seconds']} s")
