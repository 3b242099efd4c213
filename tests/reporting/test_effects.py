"""Incremental effects recover a known truth."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import BadInputError
from nextbest.reporting.effects import compare_arms
from nextbest.reporting.outcomes import load_outcomes
from nextbest.warehouse.db import connect


def test_overall_effect_covers_the_true_effect(logged) -> None:
    ws, truth = logged
    con = connect(ws.warehouse_path, read_only=True)
    out = load_outcomes(con, ws.config(), experiment="historical")
    con.close()
    res = compare_arms(out, baseline="control").iloc[0]
    treated = truth[truth["arm"] != "control"]
    true_conv = float((treated["p_contact"] - treated["p_control"]).mean())
    true_rev = float(((treated["p_contact"] - treated["p_control"]) * treated["value"]).mean())
    assert res["converted_lower"] <= true_conv <= res["converted_upper"]
    assert res["revenue_lower"] <= true_rev <= res["revenue_upper"]
    assert res["treated_decisions"] == len(treated)
    assert res["converted_incremental"] == pytest.approx(res["converted_uplift"] * len(treated))


def test_segment_effects_find_the_sleeping_dogs(logged) -> None:
    ws, truth = logged
    con = connect(ws.warehouse_path, read_only=True)
    out = load_outcomes(con, ws.config(), experiment="historical")
    con.close()
    seg = out.merge(truth[["decision_id", "sleeping"]], on="decision_id")
    res = compare_arms(seg, baseline="control", by=["sleeping"]).set_index("sleeping")
    assert res.loc[True, "converted_upper"] < 0 < res.loc[False, "converted_lower"]
    assert res.loc[True, "converted_lower"] <= -0.10 <= res.loc[True, "converted_upper"]


def test_stratification_weights_experiments_by_treated_decisions() -> None:
    # Experiment e1: effect 0.5 on 2 treated decisions; e2: effect 0 on 6 treated decisions.
    rows = [("e1", "t", 1), ("e1", "t", 1), ("e1", "control", 0), ("e1", "control", 1)]
    rows += [("e2", "t", k % 2) for k in range(6)] + [("e2", "control", 0), ("e2", "control", 1)]
    frame = pd.DataFrame(rows, columns=["experiment", "arm", "converted"])
    frame["customer_id"] = np.arange(len(frame))
    frame["decision_id"] = frame["customer_id"].astype(str)
    res = compare_arms(frame, baseline="control", metrics=("converted",)).iloc[0]
    assert res["converted_uplift"] == pytest.approx((2 * 0.5 + 6 * 0.0) / 8)
    assert res["experiments"] == 2
    assert res["converted_incremental"] == pytest.approx(1.0)


def test_ipw_weights_speak_for_every_eligible_customer() -> None:
    # Customers offered the action with p=0.5 convert; with p=0.1 they do not. Unweighted the treated
    # rate is dominated by the p=0.5 group; weighted, each p=0.1 decision stands for 10 customers.
    frame = pd.DataFrame(
        {"arm": ["t"] * 6 + ["control"] * 2, "propensity": [0.5] * 5 + [0.1] + [1.0, 1.0],
         "converted": [1] * 5 + [0] + [0, 0], "experiment": "e"}
    )
    frame["customer_id"] = np.arange(len(frame))
    frame["decision_id"] = frame["customer_id"].astype(str)
    plain = compare_arms(frame, baseline="control", metrics=("converted",)).iloc[0]
    weighted = compare_arms(frame, baseline="control", metrics=("converted",), weighted=True).iloc[0]
    assert plain["converted_treated"] == pytest.approx(5 / 6)
    assert weighted["converted_treated"] == pytest.approx(10 / 20)


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        ({"propensity": [0.0, 0.5]}, {"weighted": True}, "decisions.propensity must lie in (0, 1]; decision '0' has 0.0"),
        ({}, {"metrics": ("clicks",)}, "unknown metric(s) ['clicks']; choose from"),
    ],
)
def test_invalid_input_is_rejected(change: dict, kwargs: dict, message: str) -> None:
    frame = pd.DataFrame({"arm": ["t", "control"], "propensity": [0.5, 0.5], "converted": [1, 0],
                          "revenue": [1.0, 0.0], "experiment": "e", "customer_id": [1, 2], "decision_id": ["0", "1"]})
    frame = frame.assign(**change)
    with pytest.raises(BadInputError, match=re.escape(message)):
        compare_arms(frame, baseline="control", **kwargs)


def test_no_baseline_gives_an_empty_table() -> None:
    frame = pd.DataFrame({"arm": ["t"], "converted": [1], "revenue": [1.0], "experiment": "e",
                          "customer_id": [1], "decision_id": ["0"], "propensity": [None]})
    assert compare_arms(frame, baseline="control").empty
