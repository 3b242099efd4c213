"""Commands: ``nextbest train``, ``nextbest promote``, ``nextbest retrain``, ``nextbest models``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextbest.live.cli import sync_live
from nextbest.clitools import echo_json, workspace_of
from nextbest.errors import BadInputError

#: Metrics printed after training (all of them are in MLflow).
SUMMARY_METRICS: tuple[str, ...] = (
    "test_auc", "oracle_auc", "uplift_spearman", "test_logloss", "test_brier", "test_uncalibrated_brier",
    "test_ece", "test_qini", "test_top_decile_lift", "test_value_mae",
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("promote")(promote)
    app.command("retrain")(retrain)
    app.command("models")(models)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def train(
    ctx: typer.Context,
    tune: Annotated[int, typer.Option("--tune", help="Optuna trials before the final fit (0 = none).", min=0)] = 0,
    strategy: Annotated[
        str | None, typer.Option(help="global | per_offer_channel (default: training.strategy).")
    ] = None,
    learner: Annotated[str | None, typer.Option(help="Uplift learner s | t | x | shift (default: training.uplift_learner).")] = None,
    compare: Annotated[
        bool, typer.Option(help="Train every strategy × learner (s, t; shift globally) as separate runs, register none; print the table.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    engine: Annotated[str, typer.Option(help="duckdb: the warehouse; spark: the training set from a lake (--lake), "
                                        "built on Spark, the model fitted on this machine.")] = "duckdb",
    lake: Annotated[Path | None, typer.Option(help="Lake folder for --engine spark (`nextbest data export`).")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master URL (default: SPARK_REMOTE, else local[2]).")
                      ] = None,
) -> None:
    """Train the response/uplift/value model, log it to MLflow and register it as challenger."""
    from nextbest.training.trainer import TrainOptions, check_options, load_training_set, run_training

    ws = workspace_of(ctx)
    config = ws.config()
    options = check_options(TrainOptions(strategy=strategy, learner=learner, tune_trials=tune))  # type: ignore[arg-type]
    if engine == "spark":
        if lake is None:
            raise BadInputError("--engine spark needs --lake DIR; write one with `nextbest data export --output DIR`")
        from nextbest.spark import require_spark

        require_spark()
        from nextbest.spark.training import load_spark_training_set

        data, version = load_spark_training_set(ws, config, lake, master, _say)
    elif engine == "duckdb":
        if lake is not None or master is not None:
            raise BadInputError("--lake and --master belong to --engine spark; add --engine spark or drop them")
        sync_live(ws)  # the services' decisions and outcomes first
        data, version = load_training_set(ws, config, _say)
    else:
        raise BadInputError(f"--engine {engine!r}: use duckdb or spark")
    _say(f"training set: {data.lineage['rows']:,} decisions, {data.lineage['positives']:,} positive "
         f"({data.lineage['label']} within {data.lineage['response_window_days']} days)")
    if compare:
        rows = []
        # The shift learner's two models share one encoding, so it only exists globally.
        pairs = [("global", "s"), ("global", "t"), ("global", "shift"), ("per_offer_channel", "s"), ("per_offer_channel", "t")]
        for strat, lrn in pairs:
            opts = TrainOptions(strategy=strat, learner=lrn, tune_trials=0, register=False,  # type: ignore[arg-type]
                                run_name=f"compare-{strat}-{lrn}")
            result = run_training(ws, config, data, opts, feature_set_version=version, progress=_say)
            rows.append({"strategy": strat, "learner": lrn, "run_id": result.run_id,
                         **{k: result.metrics.get(k) for k in SUMMARY_METRICS}})
        if as_json:
            echo_json({"runs": rows})
            return
        for r in rows:
            typer.echo(f"{r['strategy']:<18} {r['learner']}  " + "  ".join(
                f"{k}={r[k]:.4f}" for k in SUMMARY_METRICS if r.get(k) is not None))
        return
    result = run_training(ws, config, data, options, feature_set_version=version, progress=_say)
    summary = {k: result.metrics[k] for k in SUMMARY_METRICS if k in result.metrics}
    doc = {
        "run_id": result.run_id,
        "model_version": result.version.label if result.version else None,
        "aliases": ["challenger", *(["champion"] if result.champion else [])],
        "metrics": summary,
        "tracking_uri": ws.tracking_uri,
    }
    if as_json:
        echo_json(doc)
        return
    typer.echo(f"registered {doc['model_version']} as {' and '.join(doc['aliases'])} (run {result.run_id})")
    for k, v in summary.items():
        typer.echo(f"  {k:<24} {v:.4f}")
    typer.echo(f"browse: mlflow ui --backend-store-uri {ws.tracking_uri}")


def promote(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Make the challenger the champion if it beats it on the held-out test period by the configured margin."""
    from nextbest.training.promotion import promote as run_promotion

    decision = run_promotion(workspace_of(ctx))
    if as_json:
        echo_json(decision.as_dict())
        return
    verdict = "promoted" if decision.promoted else "not promoted"
    typer.echo(f"challenger version {decision.challenger_version} {verdict}: {decision.reason}")


def retrain(
    ctx: typer.Context,
    tune: Annotated[int, typer.Option("--tune", help="Optuna trials before the final fit (0 = none).", min=0)] = 0,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Today's snapshot date (default: midnight after the "
                                              "latest event); built if missing.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Scheduled learning: sync the live store, build today's snapshot, train a challenger, promote it only
    through the gate, and tell running services to reload. Exit 0 whether promoted or kept; 75 when another
    retraining is running (it does nothing)."""
    from nextbest.features.pipeline import as_timestamp
    from nextbest.training.retrain import RetrainOptions, retrain as run_retrain

    ws = workspace_of(ctx)
    when = as_timestamp(as_of, field="--as-of") if as_of else None
    report = run_retrain(ws, RetrainOptions(tune_trials=tune, as_of=when), progress=None if as_json else _say)
    if as_json:
        echo_json(report.as_dict())
        return
    typer.echo(report.line())


def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the registered versions of nextbest-response with aliases and test metrics."""
    from mlflow import MlflowClient

    from nextbest.models.registry import MODEL_NAME, list_versions

    ws = workspace_of(ctx)
    uri = ws.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    rows = []
    for v in list_versions(uri):
        metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
        rows.append({"version": v.version, "aliases": list(v.aliases), "run_id": v.run_id,
                     **{k: metrics.get(k) for k in ("test_auc", "oracle_auc", "uplift_spearman", "test_qini")}})
    if as_json:
        echo_json({"model": MODEL_NAME, "versions": rows})
        return
    if not rows:
        typer.echo("no model registered — run `nextbest train`")
    for r in rows:
        metrics = "  ".join(f"{k}={r[k]:.4f}" for k in ("test_auc", "oracle_auc", "uplift_spearman", "test_qini")
                            if r.get(k) is not None)
        typer.echo(f"{MODEL_NAME}/{r['version']:<4} {','.join(r['aliases']) or '-':<22} {metrics}")
