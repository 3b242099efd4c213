"""A/B analysis: truth recovery, verdicts, JSON, MLflow and the command line."""

from __future__ import annotations

import json
import re

import pytest
import typer
from mlflow import MlflowClient
from typer.testing import CliRunner

from nextbest.errors import BadInputError
from nextbest.reporting.abtest import analyze_experiments
from nextbest.reporting.cli import register
from nextbest.reporting.outcomes import load_outcomes
from nextbest.warehouse.db import connect


def test_each_arm_recovers_its_true_incremental_effect(reported) -> None:
    ws, truth = reported.ws, reported.truth
    con = connect(ws.warehouse_path, read_only=True)
    analysis = analyze_experiments(load_outcomes(con, ws.config()), currency="EUR", n_resamples=500)
    con.close()
    comp = analysis.comparisons.set_index(["treatment", "baseline"])
    for arm in ("champion", "challenger"):
        t = truth[truth["arm"] == arm]
        true_conv = float((t["p_contact"] - t["p_control"]).mean())
        true_rev = float(((t["p_contact"] - t["p_control"]) * t["value"]).mean())
        row = comp.loc[(arm, "control")]
        assert row["converted_lower"] <= true_conv <= row["converted_upper"], arm
        assert row["revenue_lower"] <= true_rev <= row["revenue_upper"], arm
        assert row["revenue_interval_method"] == "bootstrap"
    # Both arms draw from the same policy: the challenger-vs-champion test must not be significant,
    # and its verdict says how many more customers a decision would take.
    h2h = comp.loc[("challenger", "champion")]
    assert not h2h["significant"]
    assert "not significant yet" in h2h["verdict"] and "more customers needed" in h2h["verdict"]
    assert {"offer", "channel"} == set(analysis.breakdown["dimension"])
    arms = analysis.arms.set_index("arm")
    assert arms.loc["control", "contacts"] == 0
    assert arms["decisions"].sum() == len(truth)


def test_run_writes_reports_and_logs_an_ab_tests_run(reported) -> None:
    ws, run = reported.ws, reported.ab
    doc = json.loads(run.json_path.read_text())
    assert {"arms", "comparisons", "breakdown", "verdicts"} <= set(doc)
    assert len(doc["verdicts"]) == 3
    assert "<!DOCTYPE html>" in run.html_path.read_text()[:50]
    client = MlflowClient(tracking_uri=ws.tracking_uri)
    exp = client.get_experiment_by_name("ab-tests")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [run.run_id]
    assert runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    assert metrics["historical.champion_vs_control.converted_uplift"] > 0
    assert metrics["historical.control.contacts"] == 0
    artifacts = {f.path for f in client.list_artifacts(run.run_id)}
    assert {run.json_path.name, run.html_path.name} <= artifacts


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, like the real root app
        pass

    register(app)
    return app


def test_cli_prints_json(reported, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTBEST_WORKSPACE", str(reported.ws.root))
    res = CliRunner().invoke(_app(), ["ab", "analyze", "--experiment", "historical", "--json", "--no-mlflow"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["mlflow_run_id"] is None and len(doc["comparisons"]) == 3


def test_cli_prints_verdicts(reported, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTBEST_WORKSPACE", str(reported.ws.root))
    res = CliRunner().invoke(_app(), ["ab", "analyze", "--no-mlflow", "--from", "2024-01-01", "--to", "2024-02-01"])
    assert res.exit_code == 0, res.output
    assert "champion beats control" in res.stdout and "report:" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "nope"], "experiment 'nope' is not in the decisions table; known experiments: historical"),
        (["--from", "2024-03-01", "--to", "2024-01-01"], "--from 2024-03-01 is not before --to 2024-01-01"),
        (["--from", "2030-01-01"], "no decisions with a closed response window in the selection; widen --from/--to"),
    ],
)
def test_cli_bad_input_names_the_fix(reported, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.setenv("NEXTBEST_WORKSPACE", str(reported.ws.root))
    res = CliRunner().invoke(_app(), ["ab", "analyze", "--no-mlflow", *args])
    assert isinstance(res.exception, BadInputError) and res.exception.exit_code == 2
    assert re.search(re.escape(message), str(res.exception))


def test_the_page_header_names_the_period_of_the_analysed_decisions(reported) -> None:
    ws, run = reported.ws, reported.ab
    con = connect(ws.warehouse_path, read_only=True)
    try:
        ts = load_outcomes(con, ws.config())["ts"]
    finally:
        con.close()
    first, last = ts.min(), ts.max()
    assert first.date() < last.date()
    header = run.html_path.read_text().split("<header>")[1].split("</header>")[0]
    assert f"decisions {first:%d %b %Y} – {last:%d %b %Y}" in header
    assert "period start" not in header and "– end" not in header
    doc = json.loads(run.json_path.read_text())
    assert doc["period"]["from"].startswith(f"{first:%Y-%m-%d}") and doc["period"]["to"].startswith(f"{last:%Y-%m-%d}")


def test_every_arm_is_compared_with_the_universal_control_group(reported) -> None:
    """Part of the control arm relabelled as the persistent hold-out: both are baselines of every treated arm."""
    ws, truth = reported.ws, reported.truth
    con = connect(ws.warehouse_path, read_only=True)
    outcomes = load_outcomes(con, ws.config())
    con.close()
    control = outcomes["arm"] == "control"
    held = control & (outcomes["customer_id"] % 2 == 0)
    outcomes.loc[held, "arm"] = "universal_control"
    analysis = analyze_experiments(outcomes, currency="EUR", n_resamples=200)
    pairs = set(zip(analysis.comparisons["treatment"], analysis.comparisons["baseline"], strict=True))
    assert {("champion", "universal_control"), ("challenger", "universal_control"), ("champion", "control")} <= pairs
    assert ("universal_control", "control") not in pairs and ("control", "universal_control") not in pairs
    comp = analysis.comparisons.set_index(["treatment", "baseline"])
    t = truth[truth["arm"] == "champion"]
    row = comp.loc[("champion", "universal_control")]
    assert row["converted_lower"] <= float((t["p_contact"] - t["p_control"]).mean()) <= row["converted_upper"]
