"""``nextbest data import | quality | summary | forget | export``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import duckdb
import typer
from nextbest.warehouse.db import connect
from nextbest.warehouse.erasure import forget
from nextbest.warehouse.importer import import_file
from nextbest.warehouse.mapping import import_mapped, load_mapping
from nextbest.warehouse.quality import Check, QualityReport, quality_report
from nextbest.warehouse.schema import IMPORTABLE
from nextbest.warehouse.summary import summarise
from rich.console import Console
from rich.table import Table as RichTable

from nextbest.clitools import data_app, echo_json, workspace_of
from nextbest.errors import BadInputError, NextbestError, NotFoundError
from nextbest.workspace import Workspace

T = TypeVar("T")

#: How long to wait for another process's write lock on the warehouse.
LOCK_WAIT_SECONDS = 10.0


def register(app: typer.Typer) -> None:
    """Add the warehouse commands to the shared ``data`` group (``app`` is the root, unused)."""
    data_app.command("import")(import_command)
    data_app.command("quality")(quality_command)
    data_app.command("summary")(summary_command)
    data_app.command("forget")(forget_command)
    data_app.command("export")(export_command)


def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV (with header) or Parquet file.")],
    table: Annotated[
        str | None, typer.Option("--table", "-t", help=f"Target table: {', '.join(IMPORTABLE)}.")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option("--map", help="Mapping YAML: derive the contract's tables from a file in another layout."),
    ] = None,
    upsert: Annotated[
        bool, typer.Option(help="Update rows whose key exists (only the file's columns) instead of rejecting them.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Validate a file against the data contract and load it, all or nothing.

    Any problem (missing or unknown column, wrong type, unknown customer,
    duplicate key, future date, value outside a vocabulary) rejects the whole
    file with the table, column, row numbers and fix; nothing is written.
    With --map, the mapping's expressions derive each table's columns first
    (docs/own-data.md, "Files in another layout: mappings").
    """
    ws = workspace_of(ctx)
    if mapping is None and table is None:
        raise BadInputError("--table is required (or --map MAPPING.yaml). Fix: add --table customers, for instance")
    spec = load_mapping(mapping) if mapping is not None else None
    if spec is not None and table is not None and [t.table for t in spec.tables] != [table]:
        raise BadInputError(
            f"--table {table} but {mapping.name} maps into {', '.join(t.table for t in spec.tables)}. "  # type: ignore[union-attr]
            "Fix: drop --table; the mapping names its tables"
        )
    config = ws.config()
    con = _open(ws)
    try:
        if spec is not None:
            results = import_mapped(con, spec, file, config, upsert=upsert, mapping_name=mapping.name)  # type: ignore[union-attr]
        else:
            results = [import_file(con, table, file, config, upsert=upsert)]  # type: ignore[arg-type]
    finally:
        con.close()
    if json:
        echo_json(results[0].as_dict() if spec is None else [r.as_dict() for r in results])
    else:
        verb = "upserted" if upsert else "imported"
        per_table: dict[str, list[float]] = {}
        for result in results:  # a mapping may feed one table from several entries
            rows, seconds = per_table.setdefault(result.table, [0, 0.0])
            per_table[result.table] = [rows + result.rows, seconds + result.seconds]
        for name, (rows, seconds) in per_table.items():
            typer.echo(f"{verb} {int(rows):,} rows into {name} from {file.name} ({seconds:.1f} s)")


def quality_command(
    ctx: typer.Context,
    as_of: Annotated[
        dt.datetime | None, typer.Option(help="Reference time for staleness (default: latest activity).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Data-quality report: completeness, contact formats, duplicates, consent, staleness, orphans."""
    ws = workspace_of(ctx)
    con = _open(ws, read_only=True)
    try:
        report = quality_report(con, ws.config(), as_of=as_of)
    finally:
        con.close()
    if json:
        echo_json(report.as_dict())
    else:
        _print_quality(report)


def summary_command(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Row counts, consent shares, interaction types, date ranges and campaign response rates."""
    ws = workspace_of(ctx)
    con = _open(ws, read_only=True)
    try:
        summary = summarise(con, ws.config())
    finally:
        con.close()
    if json:
        echo_json(summary)
    else:
        _print_summary(summary)


def forget_command(
    ctx: typer.Context,
    customer_id: Annotated[int, typer.Option("--customer-id", help="Customer to erase (integer id).")],
    json: Annotated[bool, typer.Option("--json", help="Print the audit record as JSON.")] = False,
) -> None:
    """Erase a customer from every customer-keyed table and registered store (GDPR right to be forgotten).

    Writes an audit line to the workspace's audit.log with a keyed hash of the
    id and the rows removed per table; never the id or any personal data.
    """
    ws = workspace_of(ctx)
    if not ws.warehouse_path.exists():
        raise NotFoundError(f"no warehouse at {ws.warehouse_path}. Fix: check --workspace")
    result = _retry_locked(lambda: forget(ws, customer_id))
    if json:
        echo_json(result.as_dict())
    else:
        where = ", ".join(f"{k} {v}" for k, v in {**result.tables, **result.stores}.items())
        typer.echo(f"erased customer: {result.total} record(s) removed ({where}); audit line written to {ws.audit_log}")


# --------------------------------------------------------------------------- helpers
def export_command(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="Lake folder to write (created if absent).")],
    json: Annotated[bool, typer.Option("--json", help="Print the rows per table as JSON.")] = False,
) -> None:
    """Write the warehouse as a Parquet lake for Spark: DIR/<table>/ and DIR/features/<table>/.

    Runs `nextbest data sync` first, so the live store's decisions, outcomes and
    consent changes are in it. Every table is staged and moved into place only
    when all are written. Layout: docs/scale-out.md.
    """
    from nextbest.live.cli import sync_live
    from nextbest.spark.lake import export_lake

    ws = workspace_of(ctx)
    if not ws.warehouse_path.exists():
        raise NotFoundError(f"no warehouse at {ws.warehouse_path}; run `nextbest data generate` or `nextbest data import`")
    sync_live(ws)
    con = _open(ws, read_only=True)
    try:
        counts = export_lake(con, output)
    finally:
        con.close()
    if json:
        echo_json({"lake": str(output), "rows": counts})
        return
    typer.echo(f"exported {len(counts)} tables to {output}")
    for table, n in counts.items():
        typer.echo(f"  {table:<28} {n:>12,} rows")


def _open(ws: Workspace, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if read_only and not ws.warehouse_path.exists():
        raise NotFoundError(
            f"no warehouse at {ws.warehouse_path}. Fix: run `nextbest data import` or `nextbest data generate` first"
        )
    return _retry_locked(lambda: connect(ws.warehouse_path, read_only=read_only))


def _retry_locked(fn: Callable[[], T]) -> T:
    """Call ``fn``, retrying while another process holds the warehouse's write lock."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return fn()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise NextbestError(
                    f"the warehouse is locked by another process ({exc}); retry when it has finished"
                ) from exc
            time.sleep(0.2)


def _print_quality(report: QualityReport) -> None:
    console = Console()
    console.print(f"[bold]Data quality[/bold]  {report.customers:,} customers, as of {report.as_of:%Y-%m-%d %H:%M}")
    customers = RichTable(title="Customer checks", title_justify="left")
    for col, justify in (
        ("", "left"),
        ("check", "left"),
        ("customers", "right"),
        ("share", "right"),
        ("examples (ids)", "left"),
        ("fix", "left"),
    ):
        customers.add_column(col, justify=justify)  # type: ignore[arg-type]
    table_checks: dict[str, dict[str, Check]] = {}
    for c in report.checks:
        if c.unit == "rows":  # named "<check>:<table>"
            kind, _, table = c.name.partition(":")
            table_checks.setdefault(table, {})[kind] = c
            continue
        customers.add_row(
            _mark(c),
            c.title,
            f"{c.count:,}",
            f"{c.share:.1%}",
            ", ".join(map(str, c.examples)),
            "" if c.status == "ok" else c.fix,
        )
    console.print(customers)
    tables = RichTable(title="Table checks (rows)", title_justify="left")
    for col in ("table", "rows", "unknown references", "duplicates"):
        tables.add_column(col, justify="left" if col == "table" else "right")
    for table, found in table_checks.items():
        dup = found["duplicates"]
        refs = [c for k, c in found.items() if k.startswith("unknown_")]
        ref_text = ", ".join(f"{_mark(c)} {c.count:,}" for c in refs) or "-"
        tables.add_row(table, f"{dup.base:,}", ref_text, f"{_mark(dup)} {dup.count:,}")
    console.print(tables)
    problems = [c for c in report.checks if c.unit == "rows" and c.status != "ok"]
    for c in problems:
        console.print(
            f"[yellow]![/yellow] {c.title}: {c.count:,} rows (e.g. {', '.join(map(str, c.examples))}). Fix: {c.fix}"
        )
    consent = RichTable(title="Consent per channel (share of customers)", title_justify="left")
    for col in ("channel", "consent", "unknown", "reachable"):
        consent.add_column(col, justify="left" if col == "channel" else "right")
    for c in report.consent:
        if c.personal:
            consent.add_row(c.channel, f"{c.consent:.1%}", f"{c.consent_unknown:.1%}", f"{c.reachable:.1%}")
        else:
            consent.add_row(c.channel, "not needed", "", f"{c.reachable:.1%}")
    console.print(consent)
    missing = RichTable(title="Completeness (share of empty values; columns with none omitted)", title_justify="left")
    missing.add_column("table")
    missing.add_column("empty values")
    for table, cols in report.completeness.items():
        gaps = ", ".join(f"{c} {v:.1%}" for c, v in cols.items() if v > 0)
        missing.add_row(table, gaps or "[green]complete[/green]")
    console.print(missing)
    basis = report.value_basis
    if basis is not None:
        console.print(f"[bold]Customer value (clv_12m) basis[/bold]: {basis.basis}")
        if basis.warning:
            console.print(f"[yellow]![/yellow] {basis.warning}")


def _print_summary(summary: dict[str, Any]) -> None:
    console = Console()
    tables = RichTable(title="Tables", title_justify="left")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    tables.add_column("first", justify="left")
    tables.add_column("last", justify="left")
    for name, n in summary["tables"].items():
        span = summary["date_range"].get(name.removeprefix("main."), {})
        tables.add_row(name, f"{n:,}", _fmt_ts(span.get("first")), _fmt_ts(span.get("last")))
    console.print(tables)
    types = summary["interaction_types"]
    families = ", ".join(f"{f} {v['types']}" for f, v in types["families"].items())
    console.print(f"[bold]Interaction types[/bold]: {types['distinct']} distinct ({families})")
    consent = ", ".join(f"{ch} {share:.0%}" for ch, share in summary["consent"].items())
    console.print(f"[bold]Consent[/bold]: {consent}")
    campaigns = RichTable(title="Campaign response by experiment and arm", title_justify="left")
    for col in (
        "experiment",
        "arm",
        "decisions",
        "contacted",
        "open",
        "click",
        "conversion",
        "compl./unsub.",
        "revenue/decision",
    ):
        campaigns.add_column(col, justify="left" if col in ("experiment", "arm") else "right")
    for r in summary["campaigns"]:
        campaigns.add_row(
            r["experiment"],
            r["arm"],
            f"{r['decisions']:,}",
            f"{r['contacted_share']:.0%}",
            f"{r['open_rate']:.2%}",
            f"{r['click_rate']:.2%}",
            f"{r['conversion_rate']:.2%}",
            f"{r['complaint_unsubscribe_rate']:.2%}",
            f"{r['revenue_per_decision']:.2f}",
        )
    console.print(campaigns)


def _mark(check: Check) -> str:
    return "[green]ok[/green]" if check.status == "ok" else "[yellow]![/yellow]"


def _fmt_ts(value: object) -> str:
    return f"{value:%Y-%m-%d}" if isinstance(value, dt.datetime) else ""
