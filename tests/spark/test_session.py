"""The Spark session nextbest starts: the command line stays quiet, the JVM's lines go to the log file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nextbest import logfile
from nextbest.workspace import Workspace
from tests.conftest import spark_or_skip

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]


def test_the_command_line_shows_no_jvm_lines(workspace: Workspace, tmp_path: Path) -> None:
    """A real ``nextbest`` process (the test session's JVM is not reused): a lake without customers
    starts Spark, then fails; the screen shows nextbest's error and the pointer, nothing of the JVM."""
    spark_or_skip()
    lake = tmp_path / "lake"
    lake.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", "from nextbest.cli import main; main()", "--workspace", str(workspace.root),
         "features", "build", "--engine", "spark", "--lake", str(lake), "--master", "local[1]"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: --lake {lake}: no customers/ folder of Parquet files; export a workspace with "
        f"`nextbest data export --output {lake}` or add the table",
        f"library messages: {workspace.root / logfile.LOG_FILE}",
    ]
    filed = (workspace.root / logfile.LOG_FILE).read_text()
    assert "INFO spark: spark's output follows in this file" in filed
    # Spark's own start-up banner is off at source (log4j2.properties), not only filed.
    assert "Setting default log level" not in filed
