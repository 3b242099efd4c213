"""The commands end to end: a real warehouse snapshot, a real MLflow registry, the CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from tests.decisioning.decisioning_helpers import fitted_scorer
from typer.testing import CliRunner

from nextbest.training.tracking import use_workspace
from nextbest.cli import app
from nextbest.config import load_config
from nextbest.decisioning.synthetic import random_features
from nextbest.errors import NextbestError
from nextbest.features.registry import feature_defs, offer_history_features
from nextbest.features.snapshots import write_snapshot
from nextbest.models.pyfunc import SCORER_ARTIFACT, ResponseModelPyfunc
from nextbest.models.registry import CHAMPION, MODEL_NAME, set_alias
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

AS_OF = pd.Timestamp("2024-06-03")


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace with customers, one feature snapshot and a registered champion."""
    ws = Workspace.resolve(tmp_path_factory.mktemp("cli") / "ws")
    ws.init_config()
    config = load_config()
    features = random_features(config, 200, seed=4)
    con = connect(ws.warehouse_path)
    con.register("f", features.assign(first_name="Anna", gender="f")[["customer_id", "first_name", "gender"]])
    con.execute("INSERT INTO customers (customer_id, first_name, gender) SELECT * FROM f")
    hist_cols = [d.name for d in offer_history_features(feature_defs(config))]
    history = pd.DataFrame({"customer_id": pd.Series(dtype="int64"), "offer_id": pd.Series(dtype=str),
                            **{c: pd.Series(dtype=float) for c in hist_cols}})
    doc = {"feature_set_version": "test", "as_of": AS_OF.isoformat(), "built_at": AS_OF.isoformat(), "row_count": 200,
           "offer_history_rows": 0, "definition_hash": "x", "fitted_as_of": AS_OF.isoformat(), "clv_method": "test",
           "null_shares": {}}
    write_snapshot(con, config, features, history, doc)
    con.close()

    use_workspace(ws)
    mlflow.set_experiment("test")
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        folder = fitted_scorer().save(Path(tmp) / SCORER_ARTIFACT)
        info = mlflow.pyfunc.log_model(name="model", python_model=ResponseModelPyfunc(), artifacts={SCORER_ARTIFACT: str(folder)},
                                      pip_requirements=["nextbest"])  # skip environment inference
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    set_alias(ws.tracking_uri, CHAMPION, str(version.version))
    return ws


def _run(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_rank_json(ready: Workspace) -> None:
    doc = json.loads(_run(ready, "rank", "--customer-id", "7", "--json", "--seed", "3"))
    assert doc["customer_id"] == 7 and doc["model_version"].startswith(MODEL_NAME)
    assert doc["actions"][0]["rank"] == 1
    acted = [a for a in doc["actions"] if a["offer_id"]]
    assert all(a["personalisation"]["salutation"] == "Dear Anna" for a in acted)
    again = json.loads(_run(ready, "rank", "--customer-id", "7", "--json", "--seed", "3"))
    assert [a["offer_id"] for a in again["actions"]] == [a["offer_id"] for a in doc["actions"]]
    table = _run(ready, "rank", "--customer-id", "7", "--seed", "3")
    assert "customer 7" in table and "suppressed:" in table


def test_rank_log_writes_a_decision_and_unknown_customer_is_cold_start(ready: Workspace) -> None:
    doc = json.loads(_run(ready, "rank", "--customer-id", "123456", "--json", "--log", "--channel", "web"))
    assert doc["cold_start"] is True
    con = connect(ready.warehouse_path, read_only=True)
    logged = con.execute("SELECT customer_id, offer_id FROM decisions WHERE decision_id = ?", [doc["decision_id"]]).fetchall()
    con.close()
    assert logged == [(123456, doc["actions"][0]["offer_id"])]


def test_segment_commands(ready: Workspace, tmp_path: Path) -> None:
    listed = json.loads(_run(ready, "segment", "list", "--json"))
    assert {s["name"] for s in listed} >= {"high_value", "lapsing"}
    shown = json.loads(_run(ready, "segment", "show", "high_value", "--json"))
    assert shown["size"] == next(s["size"] for s in listed if s["name"] == "high_value")
    out = tmp_path / "hv.csv"
    summary = json.loads(_run(ready, "segment", "export", "high_value", "--channel", "email", "--output", str(out)))
    assert summary["written"] == len(pd.read_csv(out))
    assert summary["written"] + sum(summary["left_out"].values()) == shown["size"]


def test_campaign_plan(ready: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "plan.parquet"
    summary = json.loads(_run(ready, "campaign", "plan", "--date", "2024-06-03", "--budget", "3", "--output", str(out)))
    plan = pd.read_parquet(out)
    assert {"customer_id", "offer_id", "channel", "expected_value", "propensity"} <= set(plan.columns)
    assert plan["cost"].sum() <= 3 + 1e-9 and plan["customer_id"].is_unique
    assert summary["optimality_gap"] <= 1e-3 and summary["contacts"] == len(plan)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["segment", "show", "nobody"], "no segment 'nobody'"),
        (["rank", "--customer-id", "1", "--at", "yesterday-ish"], "--at 'yesterday-ish': not a date/time"),
        (["campaign", "plan", "--date", "2024-06-03", "--budget", "1", "--output", "plan.csv"], "use a .parquet file name"),
        (["rank", "--customer-id", "1", "--channel", "fax"], "context channel 'fax' is not configured"),
    ],
)
def test_bad_input_exits_2_with_the_fix(ready: Workspace, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["--workspace", str(ready.root), *args])
    assert isinstance(result.exception, NextbestError), result.output
    assert result.exception.exit_code == 2  # what `nextbest` (cli.main) exits with
    assert message in str(result.exception)
