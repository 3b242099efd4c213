"""Benchmarks print their figures on stdout; library output goes to a log (nextbest.logfile.route_script_output)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
