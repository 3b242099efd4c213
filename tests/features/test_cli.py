"""``nextbest features build/show/list`` on a real workspace."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from nextbest.warehouse.db import connect
from typer.testing import CliRunner

from nextbest.cli import app, main
from nextbest.errors import BadInputError

from .conftest import T, insert

DAY = pd.Timedelta(days=1)


@pytest.fixture
def ws(workspace):
    con = connect(workspace.warehouse_path)
    insert(con, "customers", [{"customer_id": 1, "gender": "m"}, {"customer_id": 2}])
    insert(con, "interactions", [{"customer_id": 1, "ts": T - DAY, "type": "web.search"}])
    con.close()
    return workspace


def run(ws, *args: str):
    return CliRunner().invoke(app, ["--workspace", str(ws.root), "features", *args])


def test_build_series_and_show(ws, tmp_path) -> None:
    out = tmp_path / "f.parquet"
    r = run(ws, "build", "--snapshots", "daily", "--from", "2024-06-28", "--to", "2024-06-30", "--output", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [s["as_of"] for s in doc["snapshots"]] == ["2024-06-28T00:00:00", "2024-06-29T00:00:00", "2024-06-30T00:00:00"]
    assert doc["snapshots"][0]["row_count"] == 2 and "age" in doc["snapshots"][0]["null_shares"]
    assert len(pd.read_parquet(out)) == 6 and (out.parent / "f.parquet.manifest.json").exists()
    r = run(ws, "show", "--customer-id", "1", "--json")
    view = json.loads(r.output)
    assert (view["source"], view["as_of"]) == ("snapshot", "2024-06-30T00:00:00")
    assert view["features"]["interactions_7d"] == 1 and view["features"]["age"] is None
    r = run(ws, "show", "--customer-id", "1", "--as-of", "2024-06-29")  # the day of the interaction: not included
    assert r.exit_code == 0 and "interactions_7d" in r.output
    assert json.loads(run(ws, "show", "--customer-id", "1", "--as-of", "2024-07-05", "--json").output)["source"] == "computed"
    assert "engagement_score" in {d["name"] for d in json.loads(run(ws, "list", "--json").output)}


@pytest.mark.parametrize(("args", "message"), [
    (["build", "--from", "2024-06-01"], "--from/--to need --snapshots daily|weekly"),
    (["build", "--snapshots", "weekly", "--from", "2024-06-01"], "needs --from and --to dates"),
    (["build", "--snapshots", "daily", "--from", "2024-06-09", "--to", "2024-06-01"], "is after --to"),
    (["build", "--as-of", "2024-06-01", "--snapshots", "daily", "--from", "2024-06-01", "--to", "2024-06-02"],
     "either --as-of or --snapshots"),
    (["build", "--as-of", "soon"], "--as-of: 'soon' is not a date"),
    (["show", "--customer-id", "99"], "customer 99 is not in the warehouse's customers table"),
])
def test_bad_input(ws, args: list[str], message: str) -> None:
    r = run(ws, *args)
    assert isinstance(r.exception, BadInputError) and message in str(r.exception)


def test_missing_customer_exits_2(ws, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["nextbest", "-w", str(ws.root), "features", "show", "--customer-id", "42"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and "customer 42 is not in the warehouse" in capsys.readouterr().err
