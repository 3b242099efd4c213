"""``nextbest ab analyze`` and ``nextbest report uplift``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from nextbest.clitools import echo_json, workspace_of
from nextbest.live.cli import sync_live


def register(app: typer.Typer) -> None:
    """Add the ``ab`` and ``report`` command groups to the root app."""
    ab_app = typer.Typer(help="Analyse A/B experiments in the decision log.", no_args_is_help=True)
    report_app = typer.Typer(help="Reports for marketers (self-contained HTML).", no_args_is_help=True)

    @ab_app.command("analyze")
    def analyze(
        ctx: typer.Context,
        experiment: Annotated[str | None, typer.Option(help="Experiment name; default: every experiment in the log.")] = None,
        start: Annotated[dt.datetime | None, typer.Option("--from", help="First decision date (inclusive).")] = None,
        end: Annotated[dt.datetime | None, typer.Option("--to", help="Last decision date (exclusive).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
        mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log a run to the 'ab-tests' experiment.")] = True,
    ) -> None:
        """Per arm, offer and channel: rates, incremental effects with 95% intervals, p-values and verdicts."""
        from nextbest.reporting.ab_page import run_ab_analysis
        from nextbest.reporting import format as fmt

        ws = workspace_of(ctx)
        sync_live(ws)  # the services' decisions and outcomes first
        run = run_ab_analysis(ws, experiment=experiment, start=start, end=end, log_to_mlflow=mlflow)
        if as_json:
            echo_json(run.analysis.to_dict() | {"report": str(run.html_path), "mlflow_run_id": run.run_id})
            return
        for row in run.analysis.arms.itertuples():
            typer.echo(
                f"{row.experiment:<16} {row.arm:<12} {fmt.count(row.decisions):>10} decisions  "
                f"conversion {fmt.percent(row.conversion_rate, 2):>7}  "
                f"revenue/customer {fmt.money(row.revenue_per_customer, run.analysis.currency, 2)}"
            )
        typer.echo("")
        for v in run.analysis.verdicts or ["no arms to compare: an experiment needs a control arm or a champion and a challenger"]:
            typer.echo(f"- {v}")
        typer.echo(f"\nreport: {run.html_path}")
        if run.run_id:
            typer.echo(f"mlflow run: {run.run_id} (experiment 'ab-tests')")

    @report_app.command("uplift")
    def uplift(
        ctx: typer.Context,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file; default reports/uplift-<time>.html.")] = None,
        experiment: Annotated[str | None, typer.Option(help="Only this experiment's decisions.")] = None,
        alias: Annotated[str, typer.Option(help="Model alias whose predicted uplift draws the Qini curves.")] = "champion",
        mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log a run to the 'reports' experiment.")] = True,
    ) -> None:
        """Incremental revenue and conversions, uplift by offer, segment and channel, and the customer dashboard."""
        from nextbest.reporting.uplift_report import build_uplift_report

        ws = workspace_of(ctx)
        sync_live(ws)  # the services' decisions and outcomes first
        if output is not None and not output.is_absolute() and not output.exists():
            output = Path.cwd() / output
        report = build_uplift_report(ws, output=output, experiment=experiment, alias=alias, log_to_mlflow=mlflow)
        typer.echo(f"report: {report.path}")
        for note in report.notes:
            typer.echo(f"note: {note}")
        if report.run_id:
            typer.echo(f"mlflow run: {report.run_id} (experiment 'reports')")

    app.add_typer(ab_app, name="ab")
    app.add_typer(report_app, name="report")
