"""Qini of the registered model's uplift per e-mail, for visits and conversions, on held-out customers.

Run after ``nextbest train`` (see README.md)::

    .venv/bin/python examples/hillstrom/qini.py --workspace hillstrom-ws [--alias champion] [--html qini.html]

Each e-mail's uplift model is judged the way the literature judges Hillstrom:
treated = customers who got that e-mail, control = *every* no-e-mail customer
(whichever offer their control decision records), on the trainer's test split.
``qini`` is sklift's normalised ``qini_auc_score``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd
from sklift.metrics import qini_auc_score, qini_curve

from nextbest.models.registry import load_scorer
from nextbest.reporting.policy_eval import held_out, load_logged, model_rows
from nextbest.training.tracking import use_workspace
from nextbest.warehouse import hillstrom
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace


def qini_table(ws: Workspace, alias: str = "champion", test_share: float | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per (e-mail, outcome): held-out customers, treated share and normalised Qini."""
    config = ws.config()
    scorer = load_scorer(use_workspace(ws), alias=alias)
    con = connect(ws.warehouse_path, read_only=True)
    try:
        logged = load_logged(con, config, hillstrom.EXPERIMENT)
        rows = model_rows(con, config, scorer, hillstrom.EXPERIMENT)
    finally:
        con.close()
    frame = logged.merge(rows[["decision_id", *[c for c in rows.columns if c not in logged.columns]]], on="decision_id")
    test = frame.loc[held_out(frame["ts"], test_share or config.training.test_share)].reset_index(drop=True)
    out, curves = [], {}
    for offer in hillstrom.OFFERS:
        keep = ~test["contacted"] | (test["offer_id"] == offer)
        part = test[keep]
        uplift = scorer.score(part.assign(offer_id=offer, channel=hillstrom.CHANNEL))["uplift"].to_numpy()
        for outcome in ("visits", "conversions"):
            y, t = part[outcome].to_numpy(int), part["contacted"].to_numpy(int)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                q = qini_auc_score(y, uplift, t)
                curves[(offer, outcome)] = qini_curve(y, uplift, t)
            out.append({"email": offer, "outcome": outcome, "customers": len(part), "treated": int(t.sum()),
                        "qini": round(float(q), 4)})
    meta = {"model_version": scorer.model_version, "label": config.training.label,
            "test_share": test_share or config.training.test_share}
    return pd.DataFrame(out), {"meta": meta, "curves": curves}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", "-w", type=Path, default=None)
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--test-share", type=float, default=None)
    parser.add_argument("--html", type=Path, default=None, help="Write the Qini curves as a plotly page.")
    args = parser.parse_args()
    ws = Workspace.resolve(args.workspace)
    table, extra = qini_table(ws, args.alias, args.test_share)
    print(extra["meta"])
    print(table.to_string(index=False))
    if args.html:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("visits", "conversions"))
        for (offer, outcome), (x, q) in extra["curves"].items():
            col = 1 if outcome == "visits" else 2
            step = max(1, len(x) // 300)
            fig.add_trace(go.Scatter(x=x[::step] / x[-1], y=q[::step], name=f"{offer} ({outcome})"), row=1, col=col)
            fig.add_trace(go.Scatter(x=[0, 1], y=[0, q[-1]], line={"dash": "dot"}, showlegend=False), row=1, col=col)
        fig.update_layout(title=f"Qini curves, held-out customers, {extra['meta']['model_version']}")
        fig.write_html(args.html, include_plotlyjs="cdn")
        print(f"wrote {args.html}")


if __name__ == "__main__":
    main()
