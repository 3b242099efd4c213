"""``nextbest offers import`` and ``nextbest offers export``: the offer catalogue as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextbest.clitools import echo_json, workspace_of
from nextbest.errors import BadInputError

offers_app = typer.Typer(help="The offer catalogue (config/offers.yaml) from and to CSV or Parquet.", no_args_is_help=True)


@offers_app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Catalogue export, .csv or .parquet, one offer a row.")],
    update: Annotated[bool, typer.Option("--update", help="Overwrite configured offers that have the file's ids.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Make the file the whole catalogue.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate a catalogue file and write config/offers.yaml from it (all rows valid, or nothing written).

    By default the file's offers are added and an id already configured is refused;
    --update overwrites those offers, --replace drops every offer the file lacks.
    """
    from nextbest.catalogue import import_catalogue

    if update and replace:
        raise BadInputError("--update and --replace exclude each other; choose one")
    ws = workspace_of(ctx).ensure()
    mode = "replace" if replace else "update" if update else "add"
    result = import_catalogue(ws.config_dir, file, mode=mode, dry_run=dry_run)
    if as_json:
        echo_json(result.as_dict())
        return
    verb = "would write" if dry_run else "wrote"
    typer.echo(f"{verb} {result.path}: {len(result.offers)} offers "
               f"({len(result.added)} added, {len(result.updated)} updated, {len(result.removed)} removed)")


@offers_app.command("export")
def export_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Output .csv or .parquet.")],
) -> None:
    """Write the configured catalogue as a table in the layout `offers import` reads."""
    from nextbest.catalogue import template_frame

    frame = template_frame(workspace_of(ctx).config().offers.offers)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BadInputError(f"{file}: give a .csv or .parquet file name")
    file.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(file, index=False)
    else:
        frame.to_parquet(file, index=False)
    typer.echo(f"wrote {file}: {len(frame)} offers")


def register(app: typer.Typer) -> None:
    """Add the ``offers`` command group."""
    app.add_typer(offers_app, name="offers")
