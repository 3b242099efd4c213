"""``nextbest simulate`` and ``nextbest demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nextbest.clitools import workspace_of


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("demo")(demo)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def simulate(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(help="Days to simulate.", min=1)] = 30,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", "-p",
            help="champion | challenger | rules | random | oracle | none | experiment; repeat to compare "
            "(paired, on the same world). 'none' is always added. Default: champion, rules, random, oracle.",
        ),
    ] = None,
    campaign_share: Annotated[float, typer.Option(help="Share of customers in each day's campaign (triggers come on top).")] = 0.05,
    features_every: Annotated[int, typer.Option(help="Rebuild features every N days.", min=1)] = 1,
    retrain_every: Annotated[int, typer.Option(help="Retrain model policies every N days, promoting through the gate (0 = never).", min=0)] = 0,
    tune: Annotated[int, typer.Option("--tune", help="Optuna trials per retraining.", min=0)] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the campaign sample and exploration draws.")] = 0,
    period_days: Annotated[int, typer.Option(help="Days per period of the learning curve (share of the oracle per period).",
                                             min=1)] = 10,
    jobs: Annotated[int, typer.Option(help="Policies simulated at once, each in its own process (same results, less wall time).",
                                      min=1)] = 1,
    via_server: Annotated[bool, typer.Option("--via-server", help="Rank model policies through a real `nextbest serve` over HTTP.")] = False,
    run: Annotated[str | None, typer.Option("--run", help="Run folder name under <workspace>/simulations (default: a timestamp).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON to this file.")] = None,
) -> None:
    """Closed-loop simulation: policies decide, the synthetic world answers, the loop learns."""
    from nextbest.progress import progress_bar
    from nextbest.simulation.policies import MODEL_POLICIES
    from nextbest.simulation.runner import SimulationOptions, simulate as run_simulation
    from nextbest.simulation.tables import TABLE_WIDTH, channels_table, learning_curve_lines, results_table

    ws = workspace_of(ctx)
    policies = tuple(policy or ("champion", "rules", "random", "oracle"))
    options = SimulationOptions(
        days=days, policies=policies, campaign_share=campaign_share, features_every=features_every,
        retrain_every=retrain_every, tune_trials=tune, seed=seed, run_name=run, period_days=period_days, jobs=jobs,
        served=tuple(p for p in policies if p in MODEL_POLICIES) if via_server else (),
    )
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def on_day(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"simulate {name}", total=total)
            bar.update(tasks[name], completed=done)

        result = run_simulation(ws, options, on_day)
    currency = ws.config().channels.currency
    console = Console(width=max(Console().width, TABLE_WIDTH))
    console.print(results_table(result.results, currency, f"{days} simulated days, {result.start} – {result.end} (paired)"))
    console.print(channels_table(result.results))
    for line in learning_curve_lines(result.results, period_days):
        console.print(line)
    for name, events in result.retraining.items():
        for e in events:
            console.print(f"{name}: retrained on day {e['day']}: {e['version']} {'promoted' if e['promoted'] else 'kept champion'} ({e['reason']})")
    console.print(f"policy workspaces: {result.folder}  ({result.seconds:.0f} s)")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.as_json(), indent=2))
        console.print(f"results: {json_out}")


def demo(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(help="Customers in the synthetic world.")] = 5_000,
    history_days: Annotated[int, typer.Option(help="Days of history before the simulation.")] = 150,
    days: Annotated[int, typer.Option(help="Days to simulate.")] = 30,
    seed: Annotated[int, typer.Option(help="World and simulation seed.")] = 0,
    tune: Annotated[int, typer.Option("--tune", help="Optuna trials before the final fit.", min=0)] = 5,
    fresh: Annotated[bool, typer.Option("--fresh", help="Wipe the workspace first.")] = False,
) -> None:
    """End to end: world, features, tuned model, served A/B simulation against baselines and the oracle, reports."""
    from nextbest.simulation.demo import DemoOptions, run_demo
    from nextbest.simulation.tables import TABLE_WIDTH, channels_table, results_table

    ws = workspace_of(ctx)
    summary = run_demo(
        ws, DemoOptions(customers=customers, history_days=history_days, days=days, seed=seed, tune_trials=tune, fresh=fresh),
        _say,
    )
    run = summary.simulation
    console = Console(width=max(Console().width, TABLE_WIDTH))
    currency = ws.config().channels.currency
    pure = [r for r in run.results if r.policy != "experiment"]
    console.print(results_table(pure, currency, f"nextbest demo: {days} simulated days, {run.start} – {run.end} (paired, same world)"))
    console.print(channels_table(run.results))
    champion = run.result("champion")
    lines = [f"champion captures {champion.share_of_oracle:.0%} of the oracle's incremental profit" if champion.share_of_oracle is not None else ""]
    for base in ("rules", "random"):
        other = run.result(base).incremental_profit
        if other > 0:
            lines.append(f"champion vs {base}: {champion.incremental_profit / other - 1:+.0%} incremental profit")
    violations = sum(r.total_violations for r in run.results)
    lines.append(f"contact-policy violations (audited from the decision log): {violations}")
    for line in filter(None, lines):
        console.print(f"  {line}")
    ab = run.result("experiment")
    console.print(f"\nA/B {run.options.experiment.name if run.options.experiment else ''} (champion 80% / rules 10% / control 10%, "
                  f"ranked through the service): incremental profit {ab.incremental_profit:,.0f} {currency}")
    for v in summary.ab_verdicts:
        console.print(f"  - {v}")
    for note in summary.notes:
        console.print(f"  note: {note}")
    console.print("\nwhere to look")
    console.print(f"  steps           {', '.join(f'{k}: {v}' for k, v in summary.steps.items() if k not in ('workspace', 'simulation'))}")
    console.print(f"  workspace       {summary.workspace}")
    console.print(f"  simulation      {run.folder}  (one workspace per policy)")
    if summary.uplift_report:
        console.print(f"  uplift report   {summary.uplift_report}")
    if summary.ab_report:
        console.print(f"  A/B report      {summary.ab_report}")
    console.print(f"  MLflow UI       mlflow ui --backend-store-uri {summary.tracking_uri}")
    console.print(f"  service         ran at {summary.service_url} (stopped); serve again with "
                  f"`nextbest --workspace {run.folder / 'experiment'} serve`")
    console.print(f"  wall time       {summary.seconds / 60:.1f} min")
