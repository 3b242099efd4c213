"""The uplift report: content, MLflow run, and rendering in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image

from nextbest.errors import BadInputError
from nextbest.reporting.files import latest_report
from nextbest.reporting.uplift_report import build_uplift_report
from nextbest.workspace import Workspace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def test_page_has_every_section_and_people_formatted_numbers(reported) -> None:
    page = reported.report.path.read_text()
    for anchor in ("headline", "offers", "segments", "targeting", "channels", "klantendashboard"):
        assert f'id="{anchor}"' in page
    # plotly.js is inlined: no script is fetched from anywhere.
    assert not re.search(r"<script[^>]+src=", page)
    assert len(page) > 3_000_000  # the plotly.js bundle itself
    assert "Plotly.newPlot" in page
    assert re.search(r"€[\d,]+", page) and re.search(r"[+-]\d+\.\d\d pp", page)
    # Without a registered model the page says so and shows observed uplift only.
    assert not reported.report.scored
    assert "observed uplift only" in page


def test_headline_recovers_the_true_incremental_conversions(reported) -> None:
    h, truth = reported.report.headline, reported.truth
    treated = truth[truth["arm"] != "control"]
    true_incremental = float((treated["p_contact"] - treated["p_control"]).sum())
    assert h["incremental_conversions_lower"] <= true_incremental <= h["incremental_conversions_upper"]
    assert h["treated_decisions"] == len(treated)


def test_sleeping_dogs_are_listed_to_leave_alone(reported) -> None:
    page = reported.report.path.read_text()
    leave = page.split("Leave alone")[1].split("</section>")[0]
    # The fixture's sleeping dogs are urban customers under 35.
    assert re.search(r"age band (&lt;25|25–34) × urbanity urban", leave), leave[:2000]
    target = page.split("Target: campaigns clearly add sales here")[1].split("Leave alone")[0]
    assert not re.search(r"age band (&lt;25|25–34) × urbanity urban", target)


def test_report_run_is_in_mlflow_with_headline_metrics(reported) -> None:
    client = MlflowClient(tracking_uri=reported.ws.tracking_uri)
    exp = client.get_experiment_by_name("reports")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [reported.report.run_id]
    metrics = runs[0].data.metrics
    assert metrics["incremental_conversions"] == pytest.approx(reported.report.headline["incremental_conversions"])
    assert {"incremental_revenue", "incremental_revenue_lower", "contact_cost"} <= set(metrics)
    names = {f.path for f in client.list_artifacts(reported.report.run_id)}
    assert {"uplift.html", "uplift.json"} <= names
    summary = json.loads(reported.report.path.with_suffix(".json").read_text())
    assert summary["segments"] and summary["channels"]


def test_latest_report_is_the_newest_html(reported) -> None:
    newest = latest_report(reported.ws)
    assert newest is not None and newest.suffix == ".html"
    assert newest == max(reported.ws.reports_dir.glob("*.html"), key=lambda p: p.stat().st_mtime_ns)
    ab = latest_report(reported.ws, "ab")
    assert ab is not None and ab.name.startswith("ab-")
    assert ab.stat().st_mtime_ns >= reported.ab.html_path.stat().st_mtime_ns


def test_latest_report_is_none_without_reports(tmp_path: Path) -> None:
    assert latest_report(Workspace.resolve(tmp_path / "empty")) is None


def test_missing_warehouse_names_the_fix(workspace: Workspace) -> None:
    with pytest.raises(BadInputError, match=re.escape("run `nextbest data generate` or `nextbest data import` first")):
        build_uplift_report(workspace, log_to_mlflow=False)


def test_empty_log_still_renders_the_dashboard(logged) -> None:
    ws, _ = logged
    from nextbest.warehouse.db import connect

    con = connect(ws.warehouse_path)
    con.execute("DELETE FROM decisions WHERE arm = 'control'")
    con.close()
    report = build_uplift_report(ws, log_to_mlflow=False)
    page = report.path.read_text()
    assert "no experiment with a control arm" in page
    assert 'id="klantendashboard"' in page and report.headline == {}


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
def test_report_renders_in_headless_chromium(reported, tmp_path: Path) -> None:
    url = reported.report.path.resolve().as_uri()
    base = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]
    dom = subprocess.run([*base, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=True)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    charts = dom.stdout.count('<div class="chart">')
    assert charts >= 8
    # Every chart container was drawn by plotly.js into SVG.
    assert dom.stdout.count('class="plot-container plotly"') == charts
    assert dom.stdout.count('class="main-svg"') >= charts
    shot = tmp_path / "page.png"
    subprocess.run([*base, "--window-size=1280,3000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500, "the screenshot is (nearly) blank"


def test_active_customers_per_week_counts_whole_weeks_only() -> None:
    """Data ending on a Wednesday: that week, and the partial first week of the window, are left out."""
    import duckdb
    import pandas as pd

    from nextbest.reporting.uplift_report import weekly_activity

    # 40 customers, each on the web every other day and by e-mail every third, 2023-12-20 (Wed) to 2024-07-10 (Wed).
    days = pd.date_range("2023-12-20", "2024-07-10", freq="D")
    rows = [(c, day + pd.Timedelta(hours=9 + c % 8), family)
            for i, day in enumerate(days) for c in range(40)
            for family, every in (("web.view", 2), ("email.open", 3)) if (i + c) % every == 0]
    con = duckdb.connect()
    con.execute("CREATE TABLE interactions (customer_id BIGINT, ts TIMESTAMP, type VARCHAR)")
    con.executemany("INSERT INTO interactions VALUES (?, ?, ?)", rows)
    weekly = weekly_activity(con)
    weeks = pd.to_datetime(weekly["week"]).drop_duplicates().sort_values()
    assert (weeks.dt.dayofweek == 0).all()
    assert weeks.iloc[-1] == pd.Timestamp("2024-07-01")  # the week of 8 July has three days of data only
    window_start = pd.Timestamp("2024-07-10") - pd.Timedelta(days=181)
    assert weeks.iloc[0] >= window_start and weeks.iloc[0] - window_start < pd.Timedelta(days=7)
    assert (weeks.diff().dropna() == pd.Timedelta(days=7)).all()
    # Every customer is active on both touchpoints in every whole week: no dip at either end.
    assert (weekly["customers"] == 40).all()
    week_of = pd.to_datetime(weekly["week"])
    assert not ((week_of == pd.Timestamp("2024-07-08")) | (week_of < window_start)).any()
