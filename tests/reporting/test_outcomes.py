"""Loading decisions with their outcomes from a real warehouse file."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from nextbest.errors import BadInputError
from nextbest.reporting.outcomes import OUTCOME_COLUMNS, load_outcomes
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace


def _small(ws: Workspace) -> None:
    con = connect(ws.warehouse_path)
    con.execute(
        """
        INSERT INTO decisions (decision_id, customer_id, ts, offer_id, channel, arm, experiment, propensity, contacted)
        VALUES ('a', 1, '2024-01-01', 'book_club', 'email', 'random', 'x', 0.5, true),
               ('b', 2, '2024-01-01', 'book_club', 'email', 'control', 'x', 0.5, false),
               ('c', 3, '2024-03-01', 'book_club', 'web', 'random', 'y', NULL, true),
               ('d', 4, '2024-03-20', 'book_club', 'web', 'random', 'y', NULL, true)
        """
    )
    con.execute(
        """
        INSERT INTO responses VALUES
          ('a', '2024-01-03', 'open', NULL), ('a', '2024-01-05', 'conversion', 40.0),
          ('b', '2024-01-20', 'conversion', 99.0),            -- after the 14-day window
          ('c', '2024-03-02', 'complaint', NULL), ('c', '2024-03-02', 'unsubscribe', NULL),
          ('d', '2024-03-21', 'conversion', 10.0)
        """
    )
    con.close()


def test_outcomes_count_only_inside_the_response_window(workspace: Workspace) -> None:
    _small(workspace)
    con = connect(workspace.warehouse_path, read_only=True)
    out = load_outcomes(con, workspace.config()).set_index("decision_id")
    con.close()
    assert list(out.reset_index().columns) == list(OUTCOME_COLUMNS)
    assert out.loc["a", ["responded", "converted", "revenue"]].tolist() == [1, 1, 40.0]
    assert out.loc["b", ["converted", "revenue"]].tolist() == [0, 0.0]
    assert out.loc["c", ["responded", "complained", "unsubscribed"]].tolist() == [0, 1, 1]
    # 'd' was decided 1 day before the data ends: its window is still open.
    assert "d" not in out.index
    assert out.attrs["immature"] == 1


def test_filters_by_experiment_and_period(workspace: Workspace) -> None:
    _small(workspace)
    con = connect(workspace.warehouse_path, read_only=True)
    cfg = workspace.config()
    assert set(load_outcomes(con, cfg, experiment="x")["decision_id"]) == {"a", "b"}
    got = load_outcomes(con, cfg, start=dt.datetime(2024, 2, 1), mature_only=False)
    assert set(got["decision_id"]) == {"c", "d"}
    con.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"experiment": "nope"}, "experiment 'nope' is not in the decisions table; known experiments: x, y"),
        ({"start": dt.datetime(2024, 3, 1), "end": dt.datetime(2024, 1, 1)}, "--from 2024-03-01 is not before --to 2024-01-01"),
    ],
)
def test_bad_selection_names_the_fix(workspace: Workspace, kwargs: dict, message: str) -> None:
    _small(workspace)
    con = connect(workspace.warehouse_path, read_only=True)
    with pytest.raises(BadInputError, match=re.escape(message)):
        load_outcomes(con, workspace.config(), **kwargs)
    con.close()


def test_empty_log_gives_an_empty_frame(workspace: Workspace) -> None:
    con = connect(workspace.warehouse_path)
    out = load_outcomes(con, workspace.config())
    con.close()
    assert out.empty and isinstance(out, pd.DataFrame)
