"""The A/B analysis as an HTML page and a one-call runner that also logs to MLflow."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from nextbest.reporting import format as fmt
from nextbest.reporting import html as H
from nextbest.reporting.abtest import CONTROL_ARMS, AbAnalysis, analyze_experiments
from nextbest.reporting.files import report_path
from nextbest.reporting.outcomes import load_outcomes
from nextbest.reporting.tracking import AB_EXPERIMENT, log_run
from nextbest.errors import BadInputError
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace


@dataclass(frozen=True)
class AbRun:
    """An analysis with the files it was written to and its MLflow run."""

    analysis: AbAnalysis
    html_path: Path
    json_path: Path
    run_id: str | None


def render_ab_html(analysis: AbAnalysis) -> str:
    """A self-contained page: verdicts, arm table, effects with intervals, per-offer/channel cuts."""
    cur = analysis.currency
    arms = H.table(
        analysis.arms,
        {
            "experiment": ("Experiment", str), "arm": ("Arm", str), "customers": ("Customers", fmt.count),
            "decisions": ("Decisions", fmt.count), "contacts": ("Contacts", fmt.count),
            "response_rate": ("Response rate", fmt.percent), "conversion_rate": ("Conversion rate", lambda v: fmt.percent(v, 2)),
            "revenue_per_customer": ("Revenue / customer", lambda v: fmt.money(v, cur, 2)),
        },
    )
    sections = [
        H.Section("verdicts", "Verdicts", "".join(f"<p>{H.esc(v)}</p>" for v in analysis.verdicts)
                  or H.note("No experiment has two arms to compare (a control arm or a champion and a challenger).")),
        H.Section("arms", "Arms", arms + H.paragraph(
            f"Outcomes count within {analysis.response_window_days} days of each decision; "
            f"{fmt.count(analysis.immature)} recent decisions whose window is still open are left out.")),
    ]
    comp = analysis.comparisons
    if len(comp):
        labels = comp["experiment"] + ": " + comp["treatment"] + " vs " + comp["baseline"]
        fig = go.Figure(go.Scatter(
            x=100 * comp["converted_uplift"], y=labels, mode="markers", marker=dict(size=11, color=H.PALETTE[0]),
            error_x=dict(type="data", symmetric=False, array=100 * (comp["converted_upper"] - comp["converted_uplift"]),
                         arrayminus=100 * (comp["converted_uplift"] - comp["converted_lower"]))))
        fig.add_vline(x=0, line_color="#555")
        fig.update_layout(title="Difference in conversion rate (pp, 95% interval)")
        table = H.table(comp, {
            "experiment": ("Experiment", str), "treatment": ("Treatment", str), "baseline": ("Baseline", str),
            "converted_uplift": ("Δ conversion", fmt.points), "converted_p_value": ("p", fmt.p_value),
            "converted_incremental": ("Incremental conversions", fmt.signed_count),
            "revenue_incremental": ("Incremental revenue", lambda v: fmt.money(v, cur, signed=True)),
            "revenue_incremental_lower": ("revenue low", lambda v: fmt.money(v, cur, signed=True)),
            "revenue_incremental_upper": ("revenue high", lambda v: fmt.money(v, cur, signed=True)),
        })
        sections.append(H.Section("effects", "Effects", H.figure(fig, height=120 + 40 * len(comp)) + table + H.paragraph(
            "Conversion intervals: normal approximation on customer-clustered rates. Revenue intervals: customer "
            "bootstrap (revenue is heavy-tailed).")))
    if len(analysis.breakdown):
        bd = analysis.breakdown.sort_values(["experiment", "treatment", "dimension", "converted_uplift"], ascending=[True, True, True, False])
        sections.append(H.Section("breakdown", "Per offer and channel", H.paragraph(
            "Treatment versus control per offer and per channel, weighted by inverse logged propensity so each cut "
            "speaks for every customer the action could have gone to.") + H.table(bd, {
                "experiment": ("Experiment", str), "treatment": ("Arm", str), "dimension": ("Cut", str), "value": ("Value", str),
                "treated_decisions": ("Decisions", fmt.count), "converted_uplift": ("Δ conversion", fmt.points),
                "converted_lower": ("low", fmt.points), "converted_upper": ("high", fmt.points),
                "converted_p_value": ("p", fmt.p_value)})))
    subtitle = f"{period_label(analysis.period)} · {dt.datetime.now():%Y-%m-%d}"
    return H.page("A/B test results", subtitle, sections)


def period_label(period: tuple[dt.datetime | None, dt.datetime | None]) -> str:
    """``decisions 01 Jan 2024 – 30 Jun 2024`` (an open end, which only an empty analysis has, is named so)."""
    start, end = (f"{d:%d %b %Y}" if d is not None else None for d in period)
    if start is None and end is None:
        return "all decisions"
    if start == end:
        return f"decisions of {start}"
    return f"decisions {start or 'from the first'} – {end or 'to the last'}"


def run_ab_analysis(
    ws: Workspace,
    *,
    experiment: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    log_to_mlflow: bool = True,
    n_resamples: int = 2000,
) -> AbRun:
    """Load the log, analyse it, write ``reports/ab-*.html`` / ``.json`` and log an ``ab-tests`` run.

    Raises
    ------
    BadInputError
        No warehouse, an unknown experiment, a bad period or an empty selection.
    """
    if not ws.warehouse_path.exists():
        raise BadInputError(f"no warehouse at {ws.warehouse_path}; run `nextbest data generate` or `nextbest data import` first")
    config = ws.config()
    con = connect(ws.warehouse_path, read_only=True)
    try:
        outcomes = load_outcomes(con, config, experiment=experiment, start=start, end=end)
    finally:
        con.close()
    if outcomes.empty:
        raise BadInputError(
            "no decisions with a closed response window in the selection; widen --from/--to or pick another --experiment"
        )
    controls = CONTROL_ARMS | {config.policy.universal_control.name}
    analysis = analyze_experiments(
        outcomes, currency=config.channels.currency, control_arms=controls, period=(start, end), n_resamples=n_resamples,
    )
    html_path = report_path(ws, "ab")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_ab_html(analysis), encoding="utf-8")
    json_path = html_path.with_suffix(".json")
    json_path.write_text(json.dumps(analysis.to_dict(), indent=2))
    run_id = None
    if log_to_mlflow:
        run_id = log_run(
            ws, AB_EXPERIMENT, run_name=f"ab {experiment or 'all'} {dt.datetime.now():%Y-%m-%d %H:%M}",
            metrics=analysis.metrics(),
            params={"experiment": experiment or "all", "from": start or "", "to": end or "",
                    "response_window_days": analysis.response_window_days},
            artifacts=[json_path, html_path],
        )
    return AbRun(analysis, html_path, json_path, run_id)
