"""The commands end to end: a real warehouse snapshot, a real MLflow registry, the CLI."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from tests.decisioning.decisioning_helpers import fitted_scorer
from rich.console import Console
from typer.testing import CliRunner

from nextbest.training.tracking import use_workspace
from nextbest.cli import app
from nextbest.live.store import LiveStore
from nextbest.config import load_config
from nextbest.decisioning.cli import _print_rank
from nextbest.decisioning.documents import Action, RankResponse
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


def _longest_ids_doc() -> RankResponse:
    """A decision on the longest default offer and channel ids, with large numbers and many reasons."""
    config = load_config()
    offer = max((o.id for o in config.offers.offers), key=len)
    channel = max((c.id for c in config.channels.channels), key=len)
    actions = [
        Action(rank=1, offer_id=offer, channel=channel, probability=0.0312, uplift=-0.0121, value=1450.0, lever=1,
               cost=12.5, expected_value=-12.345, propensity=0.96,
               reasons=[f"feature_{i}:+0.{i}1" for i in range(12)]),
        Action(rank=2, offer_id=None, channel=None, probability=None, uplift=None, value=0, lever=1, cost=0,
               expected_value=0, propensity=0.04, reasons=["no_positive_expected_value"]),
    ]
    return RankResponse(decision_id="7fc668bf8f3b4dd2a6318016ddd4f2b0-0", customer_id=5, at=AS_OF.to_pydatetime(),
                        model_version="nextbest-response/12", experiment="nba-2024", arm="champion", contacted=True,
                        cold_start=False, actions=actions)


def _at_80_columns(doc: RankResponse) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    _print_rank(doc, console)
    return console.export_text()


def test_rank_table_is_readable_at_80_columns(ready: Workspace) -> None:
    docs = [_longest_ids_doc(), RankResponse.model_validate_json(
        _run(ready, "rank", "--customer-id", "7", "--seed", "3", "--top-k", "5", "--json"))]
    for doc in docs:
        text = _at_80_columns(doc)
        assert "…" not in text and "..." not in text
        assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
        table = text.split("reasons:")[0]
        for a in doc.actions:
            row = next(line for line in table.splitlines() if line.startswith(f"{a.rank} "))
            assert (a.offer_id or "(no action)") in row and (a.channel or "") in row
            assert f"{a.expected_value:,.3f}" in row
    # The reasons are under the table, whole, each action's on its own lines.
    text = _at_80_columns(docs[0])
    assert "reasons" not in text.splitlines()[2]  # not a column of the header
    assert all(r in text.split("reasons:")[1] for r in docs[0].actions[0].reasons)


def test_rank_in_a_pipe_is_80_columns_wide(ready: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = _run(ready, "rank", "--customer-id", "7", "--seed", "3", "--top-k", "5")
    assert "…" not in out and "reasons:" in out


def test_rank_log_registers_a_decision_and_unknown_customer_is_cold_start(ready: Workspace) -> None:
    doc = json.loads(_run(ready, "rank", "--customer-id", "123456", "--json", "--log", "--channel", "web"))
    assert doc["cold_start"] is True
    store = LiveStore.for_workspace(ready)
    try:
        assert doc["decision_id"] in store.logged_ids()[0]  # registered in the live store
    finally:
        store.close()
    _run(ready, "data", "sync")  # and in the warehouse once synced
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
