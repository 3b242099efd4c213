"""Benchmarks print their figures on stdout; library output goes to a log (nextbest.logfile.route_script_output)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: What MLflow writes to stderr unless routed: its INFO records, eprint() lines and the artifact progress bar.
_NOISE = re.compile(r"(INFO|WARNING) mlflow|Successfully registered model|Created version|Downloading artifacts|it/s\]")


def test_every_benchmark_routes_library_output() -> None:
    for script in sorted(BENCHMARKS.glob("*.py")):
        main = script.read_text().split('if __name__ == "__main__":', 1)
        assert len(main) == 2 and main[1].lstrip().startswith("logfile.route_script_output(__file__)"), script.name


def test_training_benchmark_keeps_mlflow_off_stderr(tmp_path: Path) -> None:
    """The smallest run of benchmarks/train.py registers a model with MLflow and loads it back."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "train.py"), "--decisions", "4000", "--customers", "400", "--days", "30",
         "--noise-features", "0", "--score-rows", "1000"],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "run_training" in done.stdout and "load_scorer" in done.stdout
    assert not _NOISE.search(done.stderr), done.stderr
    # All stderr holds is the pointer to the log, which has what MLflow said.
    pointer = done.stderr.strip()
    assert pointer.startswith("library messages: "), done.stderr
    log = Path(pointer.removeprefix("library messages: "))
    assert log.is_relative_to(tmp_path)
    filed = log.read_text()
    assert "Successfully registered model" in filed and "Created version" in filed


def _row(seed: int, champion: float, rules: float, random: float, violations: int = 0) -> dict[str, object]:
    return {
        "seed": seed, "incremental_profit": {"champion": champion, "rules": rules, "random": random, "oracle": 100.0},
        "champion_share_of_oracle": champion / 100, "violations": {"champion": violations}, "days": 30, "period_days": 10,
        "champion_share_of_oracle_by_period": [],
    }


@pytest.mark.parametrize(
    ("rows", "x_rules", "verdict"),
    [
        ([_row(0, 60, 40, 20), _row(1, 60, 48, 20)], [1.5, 1.25], True),
        ([_row(0, 60, 40, 20), _row(1, 59, 50, 20)], [1.5, 1.18], False),  # one seed short of 1.2x
        ([_row(0, 60, 40, 20, violations=1)], [1.5], False),
        ([_row(0, 60, -5, 20)], [None], True),  # rules lost money: no ratio, the champion earned
        ([_row(0, -1, -5, 20)], [None], False),
    ],
)
def test_the_simulation_summary_judges_every_seed(rows: list[dict[str, object]], x_rules: list[float | None], verdict: bool) -> None:
    summary = _script("simulation").summary(rows)
    assert summary["x_rules"] == x_rules
    assert summary["every_seed_1.2x_rules_1.5x_random_no_violation"] is verdict
    json.dumps(summary, allow_nan=False)  # strict JSON: no Infinity


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wrk(path: str, round_: int, rps: float, batch_job: bool = False) -> dict[str, object]:
    return {"workers": 2, "batch_job": batch_job, "path": path, "round": round_, "rps": rps, "p50_ms": 10.0,
            "p99_ms": 20.0 + round_, "errors": 0}


def test_the_live_benchmark_takes_each_rounds_ratio_to_its_own_noop() -> None:
    # Round 1's noop ran fast (the machine was idle for it), round 2's /rank ran slow:
    # a ratio of medians would read 0.45, the median of the rounds' own ratios 0.5.
    runs = [_wrk("/noop", 0, 500), _wrk("/rank", 0, 250),
            _wrk("/noop", 1, 1000), _wrk("/rank", 1, 500),
            _wrk("/noop", 2, 450), _wrk("/rank", 2, 150)]
    runs[-1]["batch_job_runs"], runs[-1]["batch_job_failures"] = 3, 0
    rows = {r["path"]: r for r in _script("live").summarise(runs)}
    assert rows["/noop"]["ratio_to_noop"] == 1.0 and rows["/noop"]["rps"] == 500
    rank = rows["/rank"]
    assert (rank["rounds"], rank["rps"], rank["rps_min"], rank["rps_max"]) == (3, 250, 150, 500)
    assert rank["ratio_to_noop"] == pytest.approx(0.5)
    assert rank["p99_ms"] == 22.0 and rank["batch_job_runs"] == 3 and "batch_job_runs" not in rows["/noop"]


def test_tuning_objectives_score_every_measure_as_better_with_better() -> None:
    # Three parameter sets whose test truth improves; a lower log loss and tau-risk (minimised)
    # and a higher Qini (maximised) all point the same way, so all agree +1; AUUC points the other.
    import pandas as pd

    frame = pd.DataFrame({
        "valid_logloss": [0.30, 0.20, 0.10], "valid_tau_risk": [3.0, 2.0, 1.0], "valid_qini": [0.1, 0.2, 0.3],
        "valid_auuc": [0.3, 0.2, 0.1], "valid_uplift_at_30": [0.1, 0.3, 0.2], "valid_true_uplift_correlation": [0.4, 0.5, 0.6],
        "test_true_uplift_correlation": [0.40, 0.45, 0.50], "test_true_uplift_top_30": [0.01, 0.02, 0.03],
    })
    agreement = _script("tuning_objectives").agreement(frame)
    assert {k: v["true_uplift_correlation"] for k, v in agreement.items()} == {
        "logloss": 1.0, "tau_risk": 1.0, "qini": 1.0, "auuc": -1.0, "uplift_at_30": 0.5, "true_uplift_correlation": 1.0,
    }


def test_the_learning_curve_is_judged_against_the_champion_never_retrained() -> None:
    row = _row(0, 60, 40, 20) | {"days": 60, "champion_share_of_oracle_by_period": [0.6, 0.6, 0.7, 0.7, 0.8, 0.7]}
    learning = _script("simulation").summary([row | {"frozen": {"share_of_oracle": 0.66,
                                                                "share_of_oracle_by_period": [0.6, 0.6, 0.7, 0.7, 0.7, 0.7]}}])["learning"]
    assert learning == [{"seed": 0, "first_20_days": 0.6, "last_20_days": 0.75, "learns": True, "overall": 0.6,
                         "frozen_last_20_days": 0.7, "retraining_gain_last_20_days": 0.05, "frozen_overall": 0.66}]
    # Without the frozen run the verdict is the curve's alone.
    assert "retraining_gain_last_20_days" not in _script("simulation").summary([row])["learning"][0]
