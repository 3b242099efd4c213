"""``nextbest features ...``: build snapshots, show one customer's 360° view, list the registry."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
import pandas as pd
import typer
from nextbest.features.fitted import FeatureModels
from nextbest.features.pipeline import (
    as_timestamp,
    build_features,
    build_offer_history,
    compute_sql_features,
    fit_and_build,
    fit_feature_models,
)
from nextbest.features.registry import customer_features, feature_defs
from nextbest.features.snapshots import manifest, read_snapshot, snapshot_dates, write_parquet, write_snapshot
from nextbest.warehouse.db import connect
from nextbest.warehouse.value_basis import ValueBasis, value_basis
from nextbest.warehouse.engine import SqlEngine, as_engine
from rich.console import Console
from rich.table import Table

from nextbest.live.cli import sync_live
from nextbest.clitools import echo_json, workspace_of
from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError, NotFoundError
from nextbest.progress import track
from nextbest.workspace import Workspace

features_app = typer.Typer(help="Point-in-time customer features: build snapshots, inspect customers.",
                           no_args_is_help=True)

Cadence = Literal["daily", "weekly"]
Engine = Literal["duckdb", "spark"]


def register(app: typer.Typer) -> None:
    """Add the ``features`` group to the root app."""
    app.add_typer(features_app, name="features")


def models_root(ws: Workspace) -> Path:
    """Folder of the saved feature models, one sub-folder per feature set version."""
    return ws.artifacts_dir / "features"


def default_as_of(con: duckdb.DuckDBPyConnection | SqlEngine) -> pd.Timestamp:
    """Midnight after the latest recorded event: "now" in the warehouse's own time."""
    latest = as_engine(con).query(
        "SELECT max(ts) AS ts FROM (SELECT max(ts) AS ts FROM interactions UNION ALL SELECT max(ts) FROM transactions "
        "UNION ALL SELECT max(ts) FROM life_events UNION ALL SELECT max(ts) FROM decisions)"
    )["ts"].iloc[0]
    if latest is None or pd.isna(latest):
        raise BadInputError("the warehouse has no events to date a snapshot; pass --as-of YYYY-MM-DD")
    return pd.Timestamp(latest).normalize() + pd.Timedelta(days=1)


def snapshot_plan(as_of: str | None, snapshots: Cadence | None, start: str | None, end: str | None,
                  con: duckdb.DuckDBPyConnection | SqlEngine) -> list[pd.Timestamp]:
    """The as-of times a build covers, validated."""
    if snapshots is None:
        if start or end:
            raise BadInputError("--from/--to need --snapshots daily|weekly")
        return [as_timestamp(as_of, field="--as-of") if as_of else default_as_of(con)]
    if as_of:
        raise BadInputError("give either --as-of or --snapshots with --from/--to, not both")
    if not (start and end):
        raise BadInputError(f"--snapshots {snapshots} needs --from and --to dates, e.g. --from 2024-06-01 --to 2024-06-30")
    lo, hi = as_timestamp(start, field="--from"), as_timestamp(end, field="--to")
    if lo > hi:
        raise BadInputError(f"--from {lo.date()} is after --to {hi.date()}; swap them")
    return list(pd.date_range(lo, hi, freq="D" if snapshots == "daily" else "7D"))


def reusable_models(ws: Workspace, config: NextbestConfig, earliest: pd.Timestamp, refit: bool,
                    basis: str | None = None) -> FeatureModels | None:
    """Saved models fitted no later than ``earliest`` (so no snapshot sees its future) and, when
    ``basis`` is given, measuring customer value on it (margins imported since: refit), if any."""
    models = None if refit else FeatureModels.latest(models_root(ws), config)
    if models is None or models.fitted_as_of > earliest:
        return None
    return models if basis is None or models.clv.basis == basis else None


@features_app.command("build")
def build(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Snapshot time (a date = its midnight); "
                                              "default: midnight after the latest event.")] = None,
    snapshots: Annotated[Cadence | None, typer.Option(help="Build a series of snapshots.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First snapshot date of a series.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last snapshot date of a series (inclusive).")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write a Parquet file (+ .manifest.json).")] = None,
    refit: Annotated[bool, typer.Option(help="Fit new basket clusters and CLV model at the first as-of.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
    engine: Annotated[Engine, typer.Option(help="duckdb: the workspace's warehouse; spark: a Parquet lake (--lake).")
                      ] = "duckdb",
    lake: Annotated[Path | None, typer.Option(help="Lake folder (`nextbest data export`) the Spark engine reads "
                                              "and writes features/ to.")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master URL (default: SPARK_REMOTE, else local[2]).")
                      ] = None,
) -> None:
    """Compute feature snapshots (data strictly before each as-of) into the warehouse, or on Spark into a lake."""
    ws = workspace_of(ctx)
    config = ws.config()
    if engine == "spark":
        if lake is None:
            raise BadInputError("--engine spark needs --lake DIR; write one with `nextbest data export --output DIR`")
        from nextbest.spark import require_spark

        require_spark()
        from nextbest.spark.features import build_on_spark

        docs, models, fitted, frames = build_on_spark(ws, config, lake, master=master, as_of=as_of,
                                                      snapshots=snapshots, start=start, end=end, refit=refit)
        # The basis was decided on the lake's transactions; the header line names it.
        _report_build(docs, models, fitted, frames, output, as_json, None)
        return
    if lake is not None or master is not None:
        raise BadInputError("--lake and --master belong to --engine spark; add --engine spark or drop them")
    sync_live(ws)  # the services' decisions and outcomes first
    con = connect(ws.warehouse_path)
    try:
        if con.execute("SELECT count(*) FROM customers").fetchone()[0] == 0:
            raise BadInputError("the warehouse has no customers; run `nextbest data generate` or `nextbest data import`")
        dates = snapshot_plan(as_of, snapshots, start, end, con)
        basis = value_basis(con, config)
        models = reusable_models(ws, config, dates[0], refit, basis.basis)
        fitted = models is None
        docs, frames = [], []
        for when in track(dates, "features", total=len(dates)) if len(dates) > 1 else dates:
            if models is None:  # fit at the earliest as-of, sharing its SQL pass
                feats, models = fit_and_build(con, when, config)
                models.save(models_root(ws))
            else:
                feats = build_features(con, when, config, models=models)
            hist = build_offer_history(con, when, config)
            doc = manifest(feats, hist, when, models)
            write_snapshot(con, config, feats, hist, doc)
            docs.append(doc)
            if output is not None:
                frames.append((when, feats))
    finally:
        con.close()
    _report_build(docs, models, fitted, frames, output, as_json, basis)


def _report_build(docs: list[dict[str, Any]], models: FeatureModels, fitted: bool,
                  frames: list[tuple[pd.Timestamp, pd.DataFrame]], output: Path | None, as_json: bool,
                  basis: ValueBasis | None) -> None:
    if output is not None:
        write_parquet(output, frames, docs)
    if as_json:
        value = basis.as_dict() if basis is not None else {"basis": models.clv.basis}
        echo_json({"models_fitted": fitted, "value_basis": value, "snapshots": docs})
        return
    typer.echo(f"feature set {models.version} ({'fitted' if fitted else 'reused'} models, as of "
               f"{models.fitted_as_of}; clv: {models.clv.method_} on {models.clv.basis})")
    if basis is not None and basis.warning:
        typer.echo(f"  ! {basis.warning}")
    for doc in docs:
        typer.echo(f"  {doc['as_of']}: {doc['row_count']} customers, {doc['offer_history_rows']} offer-history rows")
    if output is not None:
        typer.echo(f"  wrote {output}")


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def customer_view(ws: Workspace, customer_id: int, as_of: str | None) -> dict[str, Any]:
    """One customer's features and offer history: from a stored snapshot, else computed on the fly."""
    if not ws.warehouse_path.exists():
        raise NotFoundError(f"no warehouse at {ws.warehouse_path}; run `nextbest data generate` first")
    config = ws.config()
    con = connect(ws.warehouse_path, read_only=True)
    try:
        if not con.execute("SELECT count(*) FROM customers WHERE customer_id = ?", [customer_id]).fetchone()[0]:
            raise NotFoundError(f"customer {customer_id} is not in the warehouse's customers table; check the id")
        when = as_timestamp(as_of, field="--as-of") if as_of else None
        stored = snapshot_dates(con)
        if (when is None and stored) or (when is not None and when in stored):
            when, feats, hist = read_snapshot(con, config, when, [customer_id])
            source, version = "snapshot", con.execute(
                "SELECT feature_set_version FROM features.manifest WHERE as_of = ?", [when.to_pydatetime()]
            ).fetchone()[0]
        else:
            when = when or default_as_of(con)
            models = FeatureModels.latest(ws.artifacts_dir / "features", config)
            if models is None or models.fitted_as_of > when:
                models = fit_feature_models(con, when, config, features=compute_sql_features(con, when, config))
            feats = build_features(con, when, config, models=models, customer_ids=[customer_id])
            hist = build_offer_history(con, when, config, customer_ids=[customer_id])
            source, version = "computed", models.version
    finally:
        con.close()
    if feats.empty:
        raise NotFoundError(f"customer {customer_id} has no features as of {when} (member_since is on or after it)")
    row = feats.iloc[0]
    return {
        "customer_id": customer_id,
        "as_of": when.isoformat(),
        "source": source,
        "feature_set_version": version,
        "features": {d.name: _jsonable(row[d.name]) for d in customer_features(feature_defs(config))},
        "offer_history": [{k: _jsonable(v) for k, v in r.items() if k != "customer_id"}
                          for r in hist.to_dict(orient="records")],
    }


@features_app.command("show")
def show(
    ctx: typer.Context,
    customer_id: Annotated[int, typer.Option("--customer-id", help="Customer id.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="As-of time; default: the latest snapshot.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print one customer's features: the 360° view."""
    ws = workspace_of(ctx)
    view = customer_view(ws, customer_id, as_of)
    if as_json:
        echo_json(view)
        return
    defs = {d.name: d for d in feature_defs(ws.config())}
    table = Table(title=f"customer {customer_id} as of {view['as_of']} ({view['source']}, "
                        f"feature set {view['feature_set_version']})")
    for col in ("group", "feature", "value", "meaning"):
        table.add_column(col, overflow="fold")
    for name, value in view["features"].items():
        d = defs[name]
        table.add_row(d.group, name, "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value),
                      d.description)
    console = Console()
    console.print(table)
    if view["offer_history"]:
        hist = Table(title="offer history")
        for col in view["offer_history"][0]:
            hist.add_column(col)
        for r in view["offer_history"]:
            hist.add_row(*("—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()))
        console.print(hist)


@features_app.command("list")
def list_features(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the feature registry of the workspace's configuration."""
    defs = feature_defs(workspace_of(ctx).config())
    if as_json:
        echo_json([d.__dict__ for d in defs])
        return
    table = Table(title=f"{len(defs)} features")
    for col in ("name", "entity", "group", "dtype", "window", "default", "description"):
        table.add_column(col, overflow="fold")
    for d in defs:
        table.add_row(d.name, d.entity, d.group, d.dtype, "" if d.window is None else f"{d.window}d",
                      "null" if d.default is None else str(d.default), d.description)
    Console().print(table)
