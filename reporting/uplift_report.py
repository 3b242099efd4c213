"""The uplift report for marketers: one self-contained HTML page.

What campaigns added (incremental conversions and revenue against the control
arm), for which offers, segments and channels, whom to target and whom to leave
alone, and a customer dashboard ("klantendashboard"). Effects come from the
randomised part of the decision log (experiments with a control arm); model
curves (Qini) are added when a champion model is registered.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.errors import BadInputError, NextbestError
from nextbest.models.metrics import sklift_quietly
from nextbest.reporting import format as fmt
from nextbest.reporting import html as H
from nextbest.reporting.abtest import CONTROL_ARMS
from nextbest.reporting.effects import compare_arms
from nextbest.reporting.files import report_path
from nextbest.reporting.outcomes import load_outcomes
from nextbest.reporting.segments import SEGMENT_ATTRIBUTES, report_segments, segment_attributes
from nextbest.reporting.tracking import REPORTS_EXPERIMENT, log_run
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

#: Smallest group (decisions per arm) a segment cell needs to be shown.
MIN_CELL_DECISIONS = 50
#: Offers drawn in the Qini chart (the ones with most randomised decisions).
MAX_QINI_OFFERS = 8


@dataclass(frozen=True)
class UpliftReport:
    """A written report: where it is, its headline numbers and its MLflow run."""

    path: Path
    headline: dict[str, float]
    scored: bool
    run_id: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Data:
    """Everything the page needs, read from the warehouse in one short connection."""

    outcomes: pd.DataFrame
    attributes: pd.DataFrame
    attribute_source: str
    weekly: pd.DataFrame
    outcome_mix: pd.DataFrame
    snapshot: pd.DataFrame | None
    offer_history: pd.DataFrame | None


def weekly_activity(con: duckdb.DuckDBPyConnection, days: int = 182) -> pd.DataFrame:
    """Interactions and distinct active customers per whole week (Monday–Sunday) and touchpoint family.

    The window is the last ``days`` days of interactions, narrowed to the whole weeks
    in it. Partial weeks are dropped rather than marked: a count of *distinct*
    customers over three days is not a fraction of the week's that could be scaled
    up (most weekly actives come back within a few days), so a partial first or last
    week would draw a drop that is not there, and a marker would still draw it. The
    last day with an interaction is taken as complete.
    """
    return con.execute(
        f"""
        WITH span AS (
            SELECT date_trunc('day', max(ts)) - INTERVAL {days - 1} DAY AS start,
                   date_trunc('day', max(ts)) + INTERVAL 1 DAY AS stop
            FROM interactions
        ), whole AS (
            SELECT CASE WHEN date_trunc('week', start) = start THEN start
                        ELSE date_trunc('week', start) + INTERVAL 7 DAY END AS lo,
                   date_trunc('week', stop) AS hi
            FROM span
        )
        SELECT date_trunc('week', ts) AS week, split_part(type, '.', 1) AS family,
               count(*) AS interactions, count(DISTINCT customer_id) AS customers
        FROM interactions, whole
        WHERE ts >= lo AND ts < hi
        GROUP BY ALL ORDER BY week
        """
    ).df()


def _read(ws: Workspace, config: NextbestConfig, experiment: str | None) -> _Data:
    if not ws.warehouse_path.exists():
        raise BadInputError(
            f"no warehouse at {ws.warehouse_path}; run `nextbest data generate` or `nextbest data import` first"
        )
    # Read-only and short-lived: the scoring service may need to write meanwhile.
    con = connect(ws.warehouse_path, read_only=True)
    try:
        outcomes = load_outcomes(con, config, experiment=experiment)
        attributes, source = segment_attributes(con, config)
        weekly = weekly_activity(con)
        mix = con.execute(
            """
            SELECT d.channel, r.outcome, count(DISTINCT r.decision_id) AS decisions
            FROM decisions d JOIN responses r USING (decision_id)
            WHERE d.contacted AND ($experiment IS NULL OR d.experiment = $experiment)
            GROUP BY ALL
            """,
            {"experiment": experiment},
        ).df()
        snapshot = offer_history = None
        tables = {tuple(r) for r in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
        if ("features", "customer_snapshot") in tables:
            snapshot = con.execute(
                "SELECT * FROM features.customer_snapshot WHERE as_of = (SELECT max(as_of) FROM features.customer_snapshot)"
            ).df()
        if ("features", "offer_history") in tables:
            offer_history = con.execute(
                "SELECT * FROM features.offer_history WHERE as_of = (SELECT max(as_of) FROM features.offer_history)"
            ).df()
    finally:
        con.close()
    return _Data(outcomes, attributes, source, weekly, mix, snapshot, offer_history)


def _randomised(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Decisions of experiments that have a control arm (the only fair comparisons)."""
    # Against each experiment's own control arm: the universal control group is `nextbest ab`'s comparison.
    outcomes = outcomes[outcomes["arm"] != "universal_control"]
    has_control = outcomes.groupby("experiment")["arm"].transform(lambda a: a.isin(CONTROL_ARMS).any())
    return outcomes[has_control.astype(bool)]


# --------------------------------------------------------------------------- scoring
def _score_uplift(ws: Workspace, data: _Data, frame: pd.DataFrame, alias: str) -> tuple[pd.Series | None, str]:
    """Predicted uplift of each randomised decision from the registered model, or why not."""
    if data.snapshot is None or data.snapshot.empty:
        return None, "No feature snapshot yet (run `nextbest features build`), so the model cannot score customers."
    try:
        from nextbest.models.registry import load_scorer
    except ImportError:
        return None, "The model registry is not available in this installation."
    try:
        scorer = load_scorer(ws.tracking_uri, alias=alias)
    except NextbestError as exc:
        return None, f"No {alias} model to score with ({exc})."
    cands = frame[["decision_id", "customer_id", "offer_id", "channel"]].merge(
        data.snapshot.drop(columns=["as_of"], errors="ignore"), on="customer_id", how="left"
    )
    if data.offer_history is not None:
        cands = cands.merge(
            data.offer_history.drop(columns=["as_of"], errors="ignore"), on=["customer_id", "offer_id"], how="left"
        )
    try:
        scores = scorer.score(cands.drop(columns="decision_id"))
    except (KeyError, ValueError, NextbestError) as exc:
        return None, f"The {alias} model ({scorer.model_version}) could not score the logged decisions: {exc}"
    return pd.Series(scores["uplift"].to_numpy(), index=frame.index), f"Scores from {scorer.model_version} ({alias})."


def _qini(frame: pd.DataFrame, uplift: pd.Series) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Qini AUC per offer and the curves of the largest offers."""
    from sklift.metrics import qini_auc_score, qini_curve

    rows, curves = [], {}
    sizes = frame.groupby("offer_id").size().sort_values(ascending=False)
    treated = (~frame["arm"].isin(CONTROL_ARMS)).astype(int)
    with sklift_quietly():
        for offer in sizes.index:
            m = frame["offer_id"] == offer
            y, t, u = frame.loc[m, "converted"].to_numpy(), treated[m].to_numpy(), uplift[m].to_numpy()
            if t.min() == t.max() or y.min() == y.max():
                continue
            rows.append({"offer_id": offer, "decisions": int(m.sum()), "qini_auc": float(qini_auc_score(y, u, t))})
            if len(curves) < MAX_QINI_OFFERS:
                x, q = qini_curve(y, u, t)
                step = max(1, len(x) // 200)  # 200 points draw the same line as 20,000
                curves[offer] = (x[::step] / len(y), q[::step])
    return pd.DataFrame(rows), curves


# --------------------------------------------------------------------------- sections
def _uplift_bars(
    table: pd.DataFrame, label_col: str, title: str, metric: str = "converted", order: list[str] | None = None
) -> go.Figure:
    """Horizontal uplift bars with intervals; ``order`` (top to bottom) keeps ordinal segments in their order."""
    if order is None:
        t = table.sort_values(f"{metric}_uplift")
    else:  # plotly draws the first category at the bottom
        rank = {v: i for i, v in enumerate(reversed(order))}
        t = table.sort_values(label_col, key=lambda s: s.astype(str).map(rank))
    colours = np.where(t[f"{metric}_lower"] > 0, H.POSITIVE, np.where(t[f"{metric}_upper"] < 0, H.NEGATIVE, H.NEUTRAL))
    fig = go.Figure(
        go.Bar(
            x=100 * t[f"{metric}_uplift"], y=t[label_col].astype(str), orientation="h", marker_color=colours,
            error_x=dict(type="data", symmetric=False, array=100 * (t[f"{metric}_upper"] - t[f"{metric}_uplift"]),
                         arrayminus=100 * (t[f"{metric}_uplift"] - t[f"{metric}_lower"])),
            hovertemplate="%{y}: %{x:+.2f} pp<extra></extra>",
        )
    )
    fig.add_vline(x=0, line_color="#555")
    fig.update_layout(title=title, xaxis_title="Uplift in conversion rate (percentage points)")
    return fig


def _headline(rand: pd.DataFrame, currency: str, config: NextbestConfig) -> tuple[str, dict[str, float]]:
    if rand.empty:
        return H.note(
            "The decision log holds no experiment with a control arm, so incremental effects cannot be measured. "
            "Keep a control group (policy.yaml: experiment.arms) to see what campaigns add."
        ), {}
    res = compare_arms(rand, baseline="control").iloc[0]
    costs = {c.id: c.cost_per_contact for c in config.channels.channels}
    treated = rand[~rand["arm"].isin(CONTROL_ARMS)]
    contact_cost = float((treated["contacted"] * treated["channel"].map(costs).fillna(0.0)).sum())
    half_c = (res["converted_incremental_upper"] - res["converted_incremental_lower"]) / 2
    half_r = (res["revenue_incremental_upper"] - res["revenue_incremental_lower"]) / 2
    headline = {
        "incremental_conversions": float(res["converted_incremental"]),
        "incremental_conversions_lower": float(res["converted_incremental_lower"]),
        "incremental_conversions_upper": float(res["converted_incremental_upper"]),
        "incremental_revenue": float(res["revenue_incremental"]),
        "incremental_revenue_lower": float(res["revenue_incremental_lower"]),
        "incremental_revenue_upper": float(res["revenue_incremental_upper"]),
        "conversion_uplift": float(res["converted_uplift"]),
        "treated_decisions": float(res["treated_decisions"]),
        "control_decisions": float(res["baseline_decisions"]),
        "contact_cost": contact_cost,
    }
    body = H.cards(
        [
            ("Incremental conversions", fmt.signed_count(res["converted_incremental"]), f"± {fmt.count(half_c)} (95% interval)"),
            ("Incremental revenue", fmt.money(res["revenue_incremental"], currency, signed=True),
             f"± {fmt.money(half_r, currency)} (95% interval)"),
            ("Conversion uplift", fmt.points(res["converted_uplift"]),
             f"{fmt.percent(res['converted_treated'], 2)} contacted vs {fmt.percent(res['converted_baseline'], 2)} control"),
            ("Contact cost", fmt.money(contact_cost, currency), f"{fmt.count(res['treated_decisions'])} treated decisions"),
        ]
    ) + H.paragraph(
        f"Customers in the control group were not contacted; everything else about them is the same, because the "
        f"group was drawn at random. The difference in their conversion ({fmt.points(res['converted_uplift'])}, "
        f"{fmt.p_value(res['converted_p_value'])}) is what the campaigns caused: "
        f"{fmt.signed_count(res['converted_incremental'])} conversions and "
        f"{fmt.money(res['revenue_incremental'], currency, signed=True)} revenue that would not have happened otherwise. "
        f"Sales the customers would have made anyway are not counted. Based on {fmt.count(res['treated_decisions'])} "
        f"contacted and {fmt.count(res['baseline_decisions'])} control decisions in {int(res['experiments'])} experiment(s)."
    )
    return body, headline


def _offers_section(rand: pd.DataFrame, scores: pd.Series | None, score_note: str) -> str:
    if rand.empty:
        return H.note("No randomised decisions: nothing to show per offer.")
    by_offer = compare_arms(rand[rand["offer_id"].notna()], baseline="control", by=["offer_id"], weighted=True)
    parts = [
        H.paragraph(
            "Observed uplift per offer: conversion rate of contacted customers minus that of control customers who "
            "would have received the same offer. Green bars are clearly positive, red clearly negative, grey "
            "not distinguishable from zero yet. The whiskers are 95% intervals."
        ),
        H.figure(_uplift_bars(by_offer, "offer_id", "Observed uplift per offer"), height=max(320, 24 * len(by_offer) + 120)),
    ]
    if scores is None:
        parts.append(H.note(f"Model uplift curves are not shown: {score_note} The page shows observed uplift only."))
        return "".join(parts)
    table, curves = _qini(rand, scores)
    fig = go.Figure()
    for offer, (x, q) in curves.items():
        fig.add_trace(go.Scatter(x=100 * x, y=q, mode="lines", name=offer))
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 0], mode="lines", name="random targeting", line=dict(dash="dot", color="#888")))
    fig.update_layout(title="Qini curves per offer", xaxis_title="Share of customers targeted, best-scored first (%)",
                      yaxis_title="Incremental conversions")
    parts += [
        H.paragraph(
            f"{score_note} A Qini curve sorts customers by the model's predicted uplift and counts the extra conversions "
            "gained by targeting the top share. A curve well above zero that peaks early means the model finds the "
            "persuadable customers; a curve near zero means it targets no better than chance."
        ),
        H.figure(fig, height=420),
        H.table(table.sort_values("qini_auc", ascending=False),
                {"offer_id": ("Offer", str), "decisions": ("Decisions", fmt.count),
                 "qini_auc": ("Qini AUC", lambda v: f"{v:.3f}")}),
    ]
    return "".join(parts)


def _segments_section(rand: pd.DataFrame, attrs: pd.DataFrame, source: str,
                      segments: dict[str, str] = SEGMENT_ATTRIBUTES) -> tuple[str, pd.DataFrame]:
    if rand.empty:
        return H.note("No randomised decisions: nothing to show per segment."), pd.DataFrame()
    frame = rand.merge(attrs, on="customer_id", how="left")
    parts = [H.paragraph(
        f"Uplift per segment (attributes from the {source}). Each bar is the conversion rate of contacted customers "
        "in the segment minus that of control customers in the same segment. Segments with a higher uplift "
        "respond more to campaigns; a negative bar means contacting them costs sales."
    )]
    missing = [label for col, label in segments.items() if col not in frame]
    if missing:
        parts.append(H.note(f"Not available without a feature snapshot: {', '.join(missing)}."))
    tables = []
    for col, label in segments.items():
        if col not in frame:
            continue
        dtype = attrs[col].dtype
        order = [str(c) for c in dtype.categories] if isinstance(dtype, pd.CategoricalDtype) else (
            list(JOURNEY_STAGES) if col == "journey_stage" else None)
        frame[col] = frame[col].astype(str)
        res = compare_arms(frame, baseline="control", by=[col])
        res = res[(res["treated_decisions"] >= MIN_CELL_DECISIONS) & (res["baseline_decisions"] >= MIN_CELL_DECISIONS)]
        if res.empty:
            continue
        if order is not None:
            order = [v for v in order if v in set(res[col])] + sorted(set(res[col]) - set(order))
        fig = _uplift_bars(res, col, f"Uplift by {label.lower()}", order=order)
        parts.append(H.figure(fig, height=max(260, 30 * len(res) + 120)))
        tables.append(res.rename(columns={col: "value"}).assign(attribute=label))
    return "".join(parts), (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())


def _targeting_section(rand: pd.DataFrame, attrs: pd.DataFrame, currency: str) -> tuple[str, pd.DataFrame]:
    if rand.empty:
        return H.note("No randomised decisions: cannot tell whom to target."), pd.DataFrame()
    frame = rand.merge(attrs, on="customer_id", how="left")
    cols = [c for c in ("age_band", "urbanity", "journey_stage", "value_tier", "basket_cluster") if c in frame]
    cells = []
    for a, b in combinations(cols, 2):
        res = compare_arms(frame.astype({a: str, b: str}), baseline="control", by=[a, b])
        res = res[(res["treated_decisions"] >= MIN_CELL_DECISIONS) & (res["baseline_decisions"] >= MIN_CELL_DECISIONS)]
        res["segment"] = (
            SEGMENT_ATTRIBUTES[a].lower() + " " + res[a].astype(str) + " × " + SEGMENT_ATTRIBUTES[b].lower()
            + " " + res[b].astype(str)
        )
        cells.append(res[["segment", "treated_decisions", "baseline_decisions", "converted_uplift", "converted_se",
                          "converted_incremental", "revenue_incremental"]])
    if not cells:
        return H.note("Too few decisions per segment to single out groups."), pd.DataFrame()
    table = pd.concat(cells, ignore_index=True)
    # Many cells are tested at once: a Bonferroni interval keeps chance findings out of the lists.
    from scipy.stats import norm

    z = float(norm.ppf(1 - 0.025 / max(len(table), 1)))
    table["lower"] = table["converted_uplift"] - z * table["converted_se"]
    table["upper"] = table["converted_uplift"] + z * table["converted_se"]
    target = table[table["lower"] > 0].sort_values("converted_uplift", ascending=False).head(10)
    leave = table[table["upper"] < 0].sort_values("converted_uplift").head(10)
    cols_fmt = {
        "segment": ("Segment", str),
        "converted_uplift": ("Uplift", fmt.points),
        "treated_decisions": ("Contacted decisions", fmt.count),
        "converted_incremental": ("Incremental conversions", fmt.signed_count),
        "revenue_incremental": ("Incremental revenue", lambda v: fmt.money(v, currency, signed=True)),
    }
    body = [H.paragraph(
        f"Pairs of attributes split customers into {len(table)} groups. Listed are the groups whose effect stays "
        "clearly positive (target them) or clearly negative (leave them alone) even after allowing for the many "
        "groups compared (Bonferroni-adjusted intervals)."
    ), "<h3>Target: campaigns clearly add sales here</h3>"]
    body.append(H.table(target, cols_fmt) if len(target) else H.note("No group is clearly positive yet."))
    body.append("<h3>Leave alone: the “sleeping dogs”</h3>")
    body.append(H.paragraph(
        "These customers buy less when contacted than when left alone — contacts annoy them or trigger an "
        "unsubscribe. Suppress them, or use only non-personal channels such as the website."
    ))
    body.append(H.table(leave, cols_fmt, classes=lambda r: "bad") if len(leave) else H.note("No group is clearly negative."))
    return "".join(body), table.assign(decision=np.where(table["lower"] > 0, "target", np.where(table["upper"] < 0, "leave alone", "unclear")))


def _channels_section(rand: pd.DataFrame, config: NextbestConfig, currency: str) -> tuple[str, pd.DataFrame]:
    if rand.empty:
        return H.note("No randomised decisions: cannot compare channels."), pd.DataFrame()
    res = compare_arms(rand[rand["channel"].notna()], baseline="control", by=["channel"], weighted=True)
    treated = rand[~rand["arm"].isin(CONTROL_ARMS)]
    contacts = treated.groupby("channel")["contacted"].sum()
    cost = {c.id: c.cost_per_contact for c in config.channels.channels}
    res["contacts"] = res["channel"].map(contacts).fillna(0)
    res["cost"] = res["contacts"] * res["channel"].map(cost).fillna(0.0)
    res["cost_per_incremental_conversion"] = np.where(
        res["converted_incremental"] > 0, res["cost"] / res["converted_incremental"].where(res["converted_incremental"] > 0), np.nan
    )
    res["net_revenue"] = res["revenue_incremental"] - res["cost"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Incremental conversions per 1,000 contacts", f"Cost per incremental conversion ({currency})"))
    per_k = 1000 * res["converted_uplift"]
    fig.add_trace(go.Bar(x=res["channel"], y=per_k, marker_color=np.where(per_k > 0, H.POSITIVE, H.NEGATIVE),
                         error_y=dict(type="data", array=1000 * (res["converted_upper"] - res["converted_uplift"]),
                                      arrayminus=1000 * (res["converted_uplift"] - res["converted_lower"])),
                         showlegend=False), 1, 1)
    fig.add_trace(go.Bar(x=res["channel"], y=res["cost_per_incremental_conversion"], marker_color=H.PALETTE[0],
                         showlegend=False), 1, 2)
    body = H.paragraph(
        f"Which channel buys extra sales most cheaply? Cost per incremental conversion is the channel's contact cost "
        f"(channels.yaml) divided by the conversions it added over control; a cheap channel with a small effect can "
        f"beat an expensive one with a large effect. Amounts in {currency}."
    ) + H.figure(fig, height=360) + H.table(
        res.sort_values("cost_per_incremental_conversion"),
        {
            "channel": ("Channel", str),
            "contacts": ("Contacts", fmt.count),
            "converted_uplift": ("Uplift", fmt.points),
            "converted_incremental": ("Incremental conversions", fmt.signed_count),
            "cost": ("Contact cost", lambda v: fmt.money(v, currency)),
            "cost_per_incremental_conversion": ("Cost / incremental conversion", lambda v: fmt.money(v, currency, 2)),
            "revenue_incremental": ("Incremental revenue", lambda v: fmt.money(v, currency, signed=True)),
            "net_revenue": ("Revenue minus cost", lambda v: fmt.money(v, currency, signed=True)),
        },
    )
    return body, res


def _dashboard_section(data: _Data, currency: str) -> str:
    attrs = data.attributes
    parts = [H.paragraph(
        f"Who our {fmt.count(len(attrs))} customers are and how they respond (source: {data.attribute_source})."
    )]
    present = [(c, t) for c, t in (("age_band", "Age band"), ("urbanity", "Urbanity"), ("gender", "Gender")) if c in attrs]
    fig = make_subplots(rows=1, cols=len(present), subplot_titles=[t for _, t in present])
    for i, (col, _) in enumerate(present, start=1):
        counts = attrs[col].value_counts(sort=False)
        if not isinstance(attrs[col].dtype, pd.CategoricalDtype):
            counts = counts.sort_index()
        fig.add_trace(go.Bar(x=counts.index, y=counts.to_numpy(), marker_color=H.PALETTE[i - 1], showlegend=False), 1, i)
    parts += ["<h3>Profile</h3>", H.figure(fig, height=320)]

    tiers = attrs.groupby("value_tier", observed=False).agg(customers=("customer_id", "size"), value=("value", "sum"))
    tiers["value_share"] = tiers["value"] / max(tiers["value"].sum(), 1e-12)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=tiers.index.astype(str), y=tiers["customers"], name="customers", marker_color=H.PALETTE[0]))
    fig.add_trace(go.Scatter(x=tiers.index.astype(str), y=100 * tiers["value_share"], name="share of value (%)",
                             mode="lines+markers", marker_color=H.PALETTE[1]), secondary_y=True)
    fig.update_layout(title="Value tiers: customers and their share of value")
    top = tiers["value_share"].iloc[-1] if len(tiers) else float("nan")
    parts += ["<h3>Value tiers</h3>", H.paragraph(
        f"Customers ranked by value (top 5% of spenders = 'top', next 15% 'high', next 30% 'medium', rest 'low'). "
        f"The top tier brings {fmt.percent(top)} of all value: losing one of them costs far more than a low-tier customer."
    ), H.figure(fig, height=340)]

    if not data.weekly.empty:
        fig = go.Figure()
        for fam, g in data.weekly.groupby("family"):
            fig.add_trace(go.Scatter(x=g["week"], y=g["customers"], mode="lines", name=fam))
        fig.update_layout(title="Active customers per week, by touchpoint", yaxis_title="Customers")
        parts += ["<h3>Engagement trend</h3>", H.paragraph(
            "How many customers interact each week on the web, in the app, by e-mail, in store, with service and on "
            "social media over the last six months, in whole weeks (Monday to Sunday: a week the data ends in is left "
            "out, as its count would be low for want of days). A falling line is an early warning of churn."
        ), H.figure(fig, height=360)]
    if "engagement_trend" in attrs:
        trend = pd.cut(pd.to_numeric(attrs["engagement_trend"], errors="coerce"), [-np.inf, -0.05, 0.05, np.inf],
                       labels=["falling", "stable", "rising"]).value_counts().reindex(["falling", "stable", "rising"])
        parts.append(H.paragraph(
            f"Engagement is rising for {fmt.count(trend['rising'])} customers, stable for {fmt.count(trend['stable'])} "
            f"and falling for {fmt.count(trend['falling'])}."
        ))

    parts.append("<h3>Customer journey</h3>")
    if "journey_stage" in attrs:
        stage_counts = attrs["journey_stage"].value_counts().reindex(list(JOURNEY_STAGES), fill_value=0)
        at_or_beyond = stage_counts[::-1].cumsum()[::-1]
        fig = go.Figure(go.Funnel(y=list(JOURNEY_STAGES), x=at_or_beyond.to_numpy(), textinfo="value+percent initial",
                                  marker_color=list(H.PALETTE[:4])))
        fig.update_layout(title="Journey-stage funnel: customers at or beyond each stage")
        parts += [H.paragraph(
            "The four-loop journey: awareness → nurturing → experience → conversion, from each customer's engagement "
            "score. The funnel shows how many reached each stage; the biggest drop is where campaigns should help."
        ), H.figure(fig, height=340)]
    else:
        parts.append(H.note("Journey stages come from the feature pipeline; run `nextbest features build` to see the funnel."))

    out = data.outcomes
    contacted = out[out["contacted"].astype(bool)]
    parts.append("<h3>How customers respond to campaigns</h3>")
    if contacted.empty:
        parts.append(H.note("No contacted decisions in the log yet."))
        return "".join(parts)
    mix = data.outcome_mix.groupby("outcome")["decisions"].sum()
    steps = ["contacted", "open", "click", "visit", "conversion"]
    values = [len(contacted)] + [int(mix.get(s, 0)) for s in steps[1:]]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Response funnel (contacted decisions)", "Conversion rate of contacted customers by value tier"),
                        specs=[[{"type": "funnel"}, {"type": "bar"}]])
    fig.add_trace(go.Funnel(y=steps, x=values, textinfo="value+percent initial", marker_color=H.PALETTE[0],
                            showlegend=False), 1, 1)
    by_tier = contacted.merge(attrs[["customer_id", "value_tier"]], on="customer_id", how="left").groupby(
        "value_tier", observed=False)["converted"].mean()
    fig.add_trace(go.Bar(x=by_tier.index.astype(str), y=100 * by_tier.to_numpy(), marker_color=H.PALETTE[2], showlegend=False), 1, 2)
    complaint, unsub = contacted["complained"].mean(), contacted["unsubscribed"].mean()
    parts += [H.paragraph(
        f"Of {fmt.count(len(contacted))} contacts, {fmt.percent(contacted['responded'].mean())} got a response and "
        f"{fmt.percent(contacted['converted'].mean(), 2)} converted within {out.attrs.get('response_window_days', '?')} days; "
        f"{fmt.percent(complaint, 2)} complained and {fmt.percent(unsub, 2)} unsubscribed. Rates here are for contacted "
        "customers only and include sales that would have happened anyway — the uplift sections above show what "
        "campaigns really added."
    ), H.figure(fig, height=380)]
    return "".join(parts)


# --------------------------------------------------------------------------- entry point
def build_uplift_report(
    ws: Workspace,
    *,
    output: Path | None = None,
    experiment: str | None = None,
    alias: str = "champion",
    log_to_mlflow: bool = True,
) -> UpliftReport:
    """Write the uplift report and log it to MLflow (experiment ``reports``).

    Parameters
    ----------
    ws
        Workspace (warehouse, config, tracking URI, reports folder).
    output
        HTML path; default ``reports/uplift-<timestamp>.html`` in the workspace.
    experiment
        Only this experiment's decisions; ``None`` = all.
    alias
        Registry alias of the model whose predicted uplift draws the Qini curves.
    log_to_mlflow
        Log a run with the headline metrics and the HTML as artifact.

    Returns
    -------
    UpliftReport

    Raises
    ------
    BadInputError
        No warehouse, or an unknown experiment.
    """
    config = ws.config()
    currency = config.channels.currency
    data = _read(ws, config, experiment)
    rand = _randomised(data.outcomes)
    scores, score_note = _score_uplift(ws, data, rand, alias) if not rand.empty else (None, "no randomised decisions.")

    headline_html, headline = _headline(rand, currency, config)
    seg_html, seg_table = _segments_section(rand, data.attributes, data.attribute_source, report_segments(config))
    tgt_html, _ = _targeting_section(rand, data.attributes, currency)
    ch_html, ch_table = _channels_section(rand, config, currency)
    sections = [
        H.Section("headline", "What campaigns added", headline_html),
        H.Section("offers", "Uplift per offer", _offers_section(rand, scores, score_note)),
        H.Section("segments", "Uplift by segment", seg_html),
        H.Section("targeting", "Whom to target, whom to leave alone", tgt_html),
        H.Section("channels", "Channel comparison", ch_html),
        H.Section("klantendashboard", "Customer dashboard (klantendashboard)", _dashboard_section(data, currency)),
    ]
    period = ""
    if len(data.outcomes):
        period = f"decisions {data.outcomes['ts'].min():%d %b %Y} – {data.outcomes['ts'].max():%d %b %Y}"
    subtitle = " · ".join(p for p in (f"experiment {experiment}" if experiment else "all experiments", period,
                                      f"response window {config.training.response_window_days} days") if p)
    path = Path(output) if output is not None else report_path(ws, "uplift")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(H.page("Campaign uplift report", subtitle, sections), encoding="utf-8")

    run_id = None
    if log_to_mlflow:
        summary = path.with_suffix(".json")
        summary.write_text(json.dumps({"headline": headline, "scored": scores is not None,
                                       "segments": _records(seg_table), "channels": _records(ch_table)}, indent=2, default=str))
        run_id = log_run(
            ws, REPORTS_EXPERIMENT, run_name=f"uplift {dt.datetime.now():%Y-%m-%d %H:%M}",
            metrics=headline, params={"experiment": experiment or "all", "model_alias": alias, "scored": scores is not None,
                                      "report": path.name},
            artifacts=[path, summary],
        )
    return UpliftReport(path=path, headline=headline, scored=scores is not None, run_id=run_id,
                        notes=(score_note,) if scores is None else ())


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")
