"""Commands of the Hillstrom example: ``data import-hillstrom`` and ``evaluate-policy``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from nextbest.clitools import data_app, echo_json, workspace_of
from nextbest.config import CONFIG_FILES, DEFAULTS_DIR
from nextbest.errors import BadInputError
from nextbest.warehouse import hillstrom
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace


def plan_config(ws: Workspace) -> list[tuple[Path, Path]]:
    """Which Hillstrom config files to copy into the workspace's ``config/``.

    A file is replaced only when absent or still the packaged default (what
    ``nextbest init`` wrote): a file the user edited is never overwritten.

    Returns
    -------
    list of (source, target)
        The copies to make (none for files already in place).

    Raises
    ------
    BadInputError
        When a config file differs from both the default and the Hillstrom one.
    """
    ws.ensure()
    plans: list[tuple[Path, Path]] = []
    for name in CONFIG_FILES:
        source = hillstrom.CONFIG_DIR / f"{name}.yaml"
        if not source.exists():
            continue
        target = ws.config_dir / f"{name}.yaml"
        if target.exists():
            current = target.read_bytes()
            if current == source.read_bytes():
                continue
            if current != (DEFAULTS_DIR / f"{name}.yaml").read_bytes():
                raise BadInputError(
                    f"{target} was edited; the Hillstrom example needs its own {name}.yaml. Use a fresh "
                    "workspace (nextbest --workspace DIR data import-hillstrom) or pass --keep-config"
                )
        plans.append((source, target))
    return plans


def import_hillstrom_command(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="hillstrom.csv or .csv.gz; default: the packaged copy (sha256-verified)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the decision-time spread and the control rows' offer.")] = 0,
    keep_config: Annotated[
        bool, typer.Option("--keep-config", help="Do not install the example configuration into config/.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Load the Hillstrom e-mail experiment (2008, 64,000 customers) into the warehouse."""
    ws = workspace_of(ctx).ensure()
    plans = [] if keep_config else plan_config(ws)  # refuse before writing anything
    con = connect(ws.warehouse_path)
    try:
        summary = hillstrom.import_hillstrom(con, path, seed=seed)
    finally:
        con.close()
    for source, target in plans:
        shutil.copyfile(source, target)
    written = [target for _, target in plans]
    doc = summary.as_dict() | {"config_written": [str(p.relative_to(ws.root)) for p in written]}
    if as_json:
        echo_json(doc)
        return
    typer.echo(f"imported {summary.path} (sha256 {summary.sha256[:12]}…, {'original' if summary.original else 'not the original file'})")
    for table, n in summary.rows.items():
        typer.echo(f"  {table:<13} {n:>7,}")
    for p in written:
        typer.echo(f"  wrote {p.relative_to(ws.root)}")


def evaluate_policy_command(
    ctx: typer.Context,
    experiment: Annotated[
        str | None, typer.Option(help="Randomized experiment to evaluate on; default: the only one with a control arm.")
    ] = None,
    test_share: Annotated[
        float | None, typer.Option(help="Share of the latest decisions held out (default: training.test_share).")
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias of the model policy.")] = "champion",
    baselines_only: Annotated[bool, typer.Option("--baselines-only", help="Skip the model policy.")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the table as JSON to this file.")] = None,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="A decision log of another tool (CSV/Parquet with propensities) to evaluate on instead."),
    ] = None,
    min_propensity: Annotated[
        float, typer.Option(help="With --log: warn about logged propensities below this.", min=0.0, max=1.0)
    ] = 0.01,
) -> None:
    """Estimate what targeting policies would have earned: on held-out customers of an experiment, or on --log FILE.

    With --log, the champion, the uniform and the logged policy are evaluated off-policy
    (IPS, SNIPS and DR, with intervals and effective sample sizes) on another tool's
    decisions; see docs/own-data.md for the log's columns.
    """
    from nextbest.reporting.policy_eval import evaluate_experiment, verdict

    ws = workspace_of(ctx)
    if log is not None:
        if experiment is not None or test_share is not None:
            raise BadInputError("--experiment and --test-share choose decisions of the warehouse; drop them with --log")
        _evaluate_log(ws, log, alias=alias, baselines_only=baselines_only, json_path=json_path, tiny=min_propensity)
        return
    if not ws.warehouse_path.exists():
        raise BadInputError(f"no warehouse at {ws.warehouse_path}; run `nextbest data import-hillstrom` first")
    config = ws.config()
    scorer = None
    if not baselines_only:
        from nextbest.models.registry import load_scorer
        from nextbest.training.tracking import use_workspace

        # MLflow resolves models:/ artifact URIs through the global registry URI.
        scorer = load_scorer(use_workspace(ws), alias=alias)
    con = connect(ws.warehouse_path, read_only=True)
    try:
        name = experiment or _default_experiment(con)
        result = evaluate_experiment(con, config, scorer, name, test_share=test_share)
    finally:
        con.close()
    doc = result.as_dict() | {"verdict": verdict(result)}
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2, default=str))
    _print_table(result, config.channels.currency)
    typer.echo("\n" + doc["verdict"])


def _evaluate_log(ws: Workspace, path: Path, *, alias: str, baselines_only: bool, json_path: Path | None,
                  tiny: float) -> None:
    """``evaluate-policy --log``: read and check the log, join features as of each decision, estimate, print."""
    from nextbest.reporting.log_eval import champion_choices, evaluate_log, read_log

    decision_log = read_log(path)  # a bad file stops here, before any model or warehouse work
    config = ws.config()
    champion = None
    if not baselines_only:
        if not ws.warehouse_path.exists():
            raise BadInputError(
                f"no warehouse at {ws.warehouse_path}: the champion needs the logged customers' features; import their "
                "data (`nextbest data import`) or pass --baselines-only"
            )
        from nextbest.models.registry import load_scorer
        from nextbest.training.snapshots import build_missing, missing_dates
        from nextbest.training.tracking import use_workspace

        scorer = load_scorer(use_workspace(ws), alias=alias)
        con = connect(ws.warehouse_path)
        try:
            # As training does: every decision date gets a snapshot as of its midnight.
            build_missing(ws, con, config, missing_dates(con, decision_log.frame["ts"]), progress=typer.echo)
            champion = champion_choices(con, config, scorer, decision_log)
        finally:
            con.close()
    result = evaluate_log(decision_log, champion, tiny=tiny)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result.as_dict(), indent=2, default=str))
    _print_log_table(result)
    for w in result.warnings:
        typer.echo(f"warning: {w}")


def _print_log_table(result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    meta = result.meta  # type: ignore[attr-defined]
    control = "with" if meta["control_arm"] else "without"
    table = Table(title=f"Policy value per decision, {meta['confidence']:.0%} intervals ({meta['rounds']:,} decisions "
                        f"of {meta['source']}, {control} a control arm)")
    for column, justify in (("policy", "left"), ("estimator", "left"), ("value", "right"), ("interval", "right"),
                            ("std. error", "right"), ("effective n", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in result.table.itertuples(index=False):  # type: ignore[attr-defined]
        table.add_row(r.policy, r.estimator, f"{r.value:.4f}", f"[{r.lower:.4f}, {r.upper:.4f}]", f"{r.std_error:.4f}",
                      f"{r.effective_sample_size:,.0f}")
    Console(width=120).print(table)
    if "champion_note" in meta:
        typer.echo(f"note: {meta['champion_note']}")


def _default_experiment(con: object) -> str:
    rows = con.execute(  # type: ignore[attr-defined]
        "SELECT DISTINCT experiment FROM decisions WHERE arm = 'control' AND propensity IS NOT NULL ORDER BY 1"
    ).fetchall()
    names = [r[0] for r in rows]
    if len(names) != 1:
        raise BadInputError(
            f"choose the experiment with --experiment; randomized experiments in the log: {names or 'none'}"
        )
    return names[0]


def _print_table(result: object, currency: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from nextbest.reporting.policy_eval import METRICS

    wide = result.wide()  # type: ignore[attr-defined]
    meta = result.meta  # type: ignore[attr-defined]
    table = Table(title=f"Policy value per customer, IPW, {meta['confidence']:.0%} intervals "
                        f"({meta['held_out_decisions']:,} held-out decisions of {meta['experiment']})")
    table.add_column("policy")
    table.add_column("contacted", justify="right")
    for m in METRICS:
        table.add_column(f"{m} ({currency})" if m in ("spend", "profit") else m, justify="right")
    for policy, r in wide.iterrows():
        cells = [f"{r[m]:.4f} [{r[f'{m}_lower']:.4f}, {r[f'{m}_upper']:.4f}]" for m in METRICS]
        table.add_row(str(policy), f"{r['contact_share']:.0%}", *cells)
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    """Add ``data import-hillstrom`` and ``evaluate-policy``."""
    data_app.command("import-hillstrom")(import_hillstrom_command)
    app.command("evaluate-policy")(evaluate_policy_command)
