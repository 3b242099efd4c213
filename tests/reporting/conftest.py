"""Fixtures for the reporting tests (the log generator lives in ``reporting_log``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from nextbest.reporting.ab_page import AbRun, run_ab_analysis
from nextbest.reporting.uplift_report import UpliftReport, build_uplift_report
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from tests.reporting.reporting_log import write_log


@pytest.fixture
def logged(workspace: Workspace) -> tuple[Workspace, pd.DataFrame]:
    """A workspace whose warehouse holds the synthetic log; returns it with the truth."""
    con = connect(workspace.warehouse_path)
    try:
        truth = write_log(con, workspace.config())
    finally:
        con.close()
    return workspace, truth


@dataclass(frozen=True)
class Reported:
    """A workspace with a three-arm log, one A/B run and one uplift report logged to MLflow."""

    ws: Workspace
    truth: pd.DataFrame
    ab: AbRun
    report: UpliftReport


@pytest.fixture(scope="session")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Reported:
    """Built once per session: creating an MLflow store and rendering the page are the slow parts."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        ws = Workspace.resolve(tmp_path_factory.mktemp("reported") / "ws")
        ws.init_config()
        con = connect(ws.warehouse_path)
        try:
            truth = write_log(con, ws.config(), arms=("champion", "challenger"), n_customers=2500)
        finally:
            con.close()
        ab = run_ab_analysis(ws, n_resamples=300)
        report = build_uplift_report(ws, output=ws.reports_dir / "uplift.html")
    return Reported(ws, truth, ab, report)
