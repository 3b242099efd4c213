"""``nextbest rank``, ``nextbest segment ...`` and ``nextbest campaign plan``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from nextbest.clitools import echo_json, workspace_of
from nextbest.config import NextbestConfig
from nextbest.decisioning.campaign import plan_campaign
from nextbest.decisioning.documents import Context, RankResponse
from nextbest.decisioning.engine import DecisionEngine, complete_features
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.log import decision_rows
from nextbest.decisioning.ruleset import RuleSet
from nextbest.decisioning.segments import export, members, profile, write_export
from nextbest.errors import BadInputError, NotFoundError
from nextbest.live.history import read_history
from nextbest.live.register import register_decisions
from nextbest.live.store import LiveStore
from nextbest.models.scoring import Scorer
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

segment_app = typer.Typer(help="Marketers' segments: list, profile, export reachable customers.", no_args_is_help=True)
campaign_app = typer.Typer(help="Batch campaigns: plan contacts under budget and capacity.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("rank")(rank)
    app.command("decide")(decide)
    app.add_typer(segment_app, name="segment")
    app.add_typer(campaign_app, name="campaign")


# --------------------------------------------------------------------------- loading
def load_scorers(ws: Workspace, config: NextbestConfig) -> dict[str, Scorer]:
    """Scorers of the experiment's model arms; the first arm's model is required.

    Raises
    ------
    NotFoundError
        When the first model arm's alias (normally ``champion``) has no model.
    """
    from nextbest.models.registry import load_scorer

    aliases = [a.model_alias for a in config.policy.experiment.arms if a.policy == "model" and a.model_alias]
    aliases = list(dict.fromkeys(aliases or ["champion"]))
    scorers: dict[str, Scorer] = {aliases[0]: load_scorer(ws.tracking_uri, aliases[0])}
    for alias in aliases[1:]:
        try:
            scorers[alias] = load_scorer(ws.tracking_uri, alias)
        except NotFoundError:
            continue  # its arm is served by the first arm until a model is registered
    return scorers


def load_features(
    ws: Workspace, config: NextbestConfig, customer_ids: list[int] | None = None
) -> tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]:
    """Latest feature snapshot: ``(as_of, features, offer_history)`` (of ``customer_ids`` only, if given)."""
    from nextbest.features.snapshots import read_snapshot

    if not ws.warehouse_path.exists():
        raise NotFoundError(f"no warehouse at {ws.warehouse_path}; run `nextbest data generate` or `nextbest data import`")
    con = connect(ws.warehouse_path, read_only=True)
    try:
        return read_snapshot(con, config, None, customer_ids)
    finally:
        con.close()


def parse_time(value: str | None, default: pd.Timestamp | None, option: str) -> dt.datetime:
    """``--at``/``--date`` as a datetime; ``default`` (or now) when absent."""
    if value is None:
        return (default if default is not None else pd.Timestamp.now().floor("s")).to_pydatetime()
    try:
        return pd.Timestamp(value).to_pydatetime()
    except ValueError:
        raise BadInputError(f"{option} {value!r}: not a date/time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def _history(ws: Workspace, config: NextbestConfig, at: dt.datetime, ids: np.ndarray | None) -> ContactHistory:
    # Both stores: the warehouse up to its last sync, the live store's decisions after it.
    return read_history(ws, config, at)


def _profiles(ws: Workspace, ids: np.ndarray) -> pd.DataFrame:
    con = connect(ws.warehouse_path, read_only=True)
    try:
        con.register("_nb_ids", pd.DataFrame({"customer_id": ids.astype(np.int64)}))
        return con.execute(
            "SELECT customer_id, first_name, gender FROM customers WHERE customer_id IN (SELECT customer_id FROM _nb_ids)"
        ).df()
    finally:
        con.close()


# --------------------------------------------------------------------------- rank
def rank(
    ctx: typer.Context,
    customer_id: Annotated[int, typer.Option("--customer-id", help="Customer to rank for.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision document as JSON.")] = False,
    at: Annotated[str | None, typer.Option(help="Decision time (default: the feature snapshot's as-of).")] = None,
    seed: Annotated[int | None, typer.Option(help="Exploration seed (same seed, same decision).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50, help="Ranked actions to show.")] = 3,
    channel: Annotated[str | None, typer.Option(help="Inbound channel: rank only actions on it.")] = None,
    event: Annotated[str | None, typer.Option(help="Triggering event feature, e.g. moved_recently.")] = None,
    log: Annotated[bool, typer.Option("--log/--no-log", help="Register the decision in the live store (a contact).")] = False,
) -> None:
    """Rank the next best actions of one customer, with reasons and suppressions."""
    ws = workspace_of(ctx)
    config = ws.config()
    engine = DecisionEngine(config, load_scorers(ws, config))
    as_of, features, offer_history = load_features(ws, config, [customer_id])
    when = parse_time(at, as_of, "--at")
    ids = np.array([customer_id], dtype=np.int64)
    frame = complete_features(features, ids)
    doc = engine.rank(
        frame, when, Context(channel=channel, event=event), top_k, seed,
        history=_history(ws, config, when, ids),
        offer_history=offer_history,
        profiles=_profiles(ws, ids),
    )[0]
    if log:
        store = LiveStore.for_workspace(ws, writer="cli")
        try:
            register_decisions(store, decision_rows([doc]))
        finally:
            store.close()
    if as_json:
        echo_json(doc.model_dump(mode="json"))
    else:
        _print_rank(doc)


def _print_rank(doc: RankResponse, console: Console | None = None) -> None:
    """The decision for a person: a table that fits 80 columns unabridged, the reasons below it.

    Columns are sized to their content and never shrunk (an offer id cut to "kids…" says
    nothing); one space separates them, so the nine columns of the longest default offer
    and channel ids take 77 characters. Reason codes are listed under the table, one
    line per action, wrapped at the terminal's width. ``--json`` is the form for machines.
    """
    console = console or Console()
    console.print(
        f"customer {doc.customer_id}  arm {doc.arm}  model {doc.model_version}"
        f"{'  cold start' if doc.cold_start else ''}",
        markup=False, highlight=False,
    )
    console.print(f"decision {doc.decision_id}", markup=False, highlight=False)
    rows = [
        (str(a.rank), a.offer_id or "(no action)", a.channel or "", _fmt(a.probability), _fmt(a.uplift, signed=True),
         f"{a.value:,.2f}", f"{a.cost:,.2f}", f"{a.expected_value:,.3f}", f"{a.propensity:.3f}")
        for a in doc.actions
    ]
    headers = ("#", "offer", "channel", "P", "uplift", "value", "cost", "EV", "prop.")
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False, highlight=False)
    for i, header in enumerate(headers):
        width = max(len(header), *(len(r[i]) for r in rows)) if rows else len(header)
        table.add_column(header, justify="left" if i in (1, 2) else "right", no_wrap=True, min_width=width)
    for r in rows:
        table.add_row(*(escape(cell) for cell in r))
    console.print(table)
    explained = [a for a in doc.actions if a.reasons]
    if explained:
        console.print("reasons:", highlight=False)
        reasons = Table.grid(padding=(0, 1, 0, 0), pad_edge=False)
        reasons.add_column(justify="right", no_wrap=True)
        reasons.add_column(overflow="fold")
        for a in explained:
            reasons.add_row(f"  {a.rank}", Text(", ".join(a.reasons)))
        console.print(reasons)
    if doc.actions[0].personalisation:
        console.print(Text(f"message: {doc.actions[0].personalisation.message}"))
    if doc.suppressed:
        counts = pd.Series([s.reason for s in doc.suppressed]).value_counts()
        console.print(Text("suppressed: " + ", ".join(f"{k} {v}" for k, v in counts.items())))


def _fmt(x: float | None, signed: bool = False) -> str:
    return "" if x is None else f"{x:+.4f}" if signed else f"{x:.4f}"


# --------------------------------------------------------------------------- segments
@segment_app.command("list")
def segment_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every configured segment with its rule and size."""
    ws = workspace_of(ctx)
    config = ws.config()
    rules = RuleSet.from_config(config)
    _, features, _ = load_features(ws, config)
    rows = []
    for s in config.policy.segments:
        size = int(members(features, rules, s.name).sum())
        rows.append({"name": s.name, "size": size, "share": size / max(len(features), 1), "rule": s.rule,
                     "description": s.description})
    if as_json:
        echo_json(rows)
        return
    table = Table("segment", "size", "share", "rule", "description")
    for r in rows:
        table.add_row(r["name"], str(r["size"]), f"{r['share']:.1%}", r["rule"], r["description"])
    Console().print(table)


@segment_app.command("show")
def segment_show(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Segment name.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Size and profile of a segment: value tier, journey stage, consent per channel."""
    ws = workspace_of(ctx)
    config = ws.config()
    rules = RuleSet.from_config(config)
    _, features, _ = load_features(ws, config)
    prof = {"name": name, "rule": str(rules.segment(name)), **profile(features, members(features, rules, name), config)}
    if as_json:
        echo_json(prof)
        return
    console = Console()
    console.print(f"segment {name}: {prof['size']} customers ({prof['share']:.1%})  rule: {prof['rule']}")
    for title in ("value_tier", "journey_stage"):
        console.print(f"  {title}: " + ", ".join(f"{k} {v:.0%}" for k, v in prof[title].items()))
    table = Table("channel", "consent", "reachable")
    for ch in prof["consent"]:
        table.add_row(ch, f"{prof['consent'][ch]:.1%}", f"{prof['reachable'][ch]:.1%}")
    console.print(table)


@segment_app.command("export")
def segment_export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Segment name.")],
    channel: Annotated[str, typer.Option(help="Channel the list is for; only reachable customers are written.")],
    output: Annotated[Path, typer.Option(help="Output file (.csv or .parquet).")],
) -> None:
    """Write the segment's customer ids reachable on a channel; count those left out and why."""
    ws = workspace_of(ctx)
    config = ws.config()
    rules = RuleSet.from_config(config)
    _, features, _ = load_features(ws, config)
    result = export(features, rules, name, channel, config)
    write_export(result, output)
    echo_json({"segment": name, "channel": channel, "output": str(output), "written": len(result.customers),
               "left_out": result.left_out})


# --------------------------------------------------------------------------- campaigns
@campaign_app.command("plan")
def campaign_plan(
    ctx: typer.Context,
    date: Annotated[str, typer.Option(help="Send date, YYYY-MM-DD.")],
    budget: Annotated[float, typer.Option(help="Total contact cost allowed.")],
    output: Annotated[Path, typer.Option(help="Plan file (.parquet).")],
    k: Annotated[int, typer.Option(help="Max actions per customer.")] = 1,
    segment: Annotated[str | None, typer.Option(help="Only customers of this segment.")] = None,
) -> None:
    """Choose contacts maximising expected incremental value under budget, caps and capacities."""
    if output.suffix != ".parquet":
        raise BadInputError(f"--output {output}: use a .parquet file name")
    ws = workspace_of(ctx)
    config = ws.config()
    engine = DecisionEngine(config, load_scorers(ws, config))
    _, features, offer_history = load_features(ws, config)
    when = parse_time(date, None, "--date")
    if segment is not None:
        features = features[members(features, engine.rules, segment)].reset_index(drop=True)
    ids = features["customer_id"].to_numpy(dtype=np.int64)
    result = plan_campaign(
        engine, features, when, budget, k=k, history=_history(ws, config, when, ids), offer_history=offer_history,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    result.plan.to_parquet(output, index=False)
    echo_json({"output": str(output), **result.summary()})


# --------------------------------------------------------------------------- decide
def decide(
    ctx: typer.Context,
    date: Annotated[str, typer.Option(help="Day to decide, YYYY-MM-DD (decisions are made at its start).")],
    output: Annotated[Path, typer.Option(help="The file campaign tools pick up (.parquet or .csv).")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50, help="Ranked actions per customer.")] = 1,
    engine: Annotated[str, typer.Option(help="local (in process) or spark (reads --lake).")] = "local",
    lake: Annotated[str | None, typer.Option(
        help="Parquet lake (`nextbest data export --output`): a folder or a URL Spark reads (s3a://...); --engine spark.",
    )] = None,
    master: Annotated[str | None, typer.Option(help="Spark master URL (default local[2]; SPARK_REMOTE also works).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the file without registering the decisions.")] = False,
    seed: Annotated[int, typer.Option(help="Exploration seed: the same date and seed give the same file.")] = 0,
) -> None:
    """Decide every customer's next best actions for a day; register them as contacts."""
    from nextbest.decisioning.batch import run_decide

    ws = workspace_of(ctx)
    summary = run_decide(ws, date=date, output=output, top_k=top_k, engine=engine, lake=lake, master=master,
                         dry_run=dry_run, seed=seed)
    echo_json(summary)
