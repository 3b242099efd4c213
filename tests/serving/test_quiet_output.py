"""What a person sees running the CLI: nextbest's own lines, not its libraries' (issue: quiet output).

Real commands in subprocesses, on a copy of the session's trained workspace.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.serving.conftest import NEXTBEST, TrainedWorkspace

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]

#: Text of MLflow's messages and progress bars, none of which may reach the screen.
LIBRARY_TEXT = (
    "INFO mlflow", "WARNING mlflow", "UserWarning", "CloudPickle", "input example", "Failed to resolve installed pip version",
    "Downloading artifacts", "it/s]", "%|", "Successfully registered", "Created version",
)


def _run(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXTBEST_WORKSPACE": str(ws), "COLUMNS": "100"}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "NEXTBEST_API_TOKEN"):
        env.pop(key, None)
    done = subprocess.run([*NEXTBEST, "--workspace", str(ws), *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _screen(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def test_train_and_rank_show_nextbest_lines_and_file_the_libraries(
    trained_workspace: TrainedWorkspace, private_tmp: Path
) -> None:
    ws = trained_workspace.copy(Path(tempfile.mkdtemp(dir=private_tmp)) / "ws")
    log = ws.root / "logs" / "nextbest.log"
    log.unlink(missing_ok=True)

    trained = _run(ws.root, "train")
    screen = _screen(trained)
    assert "registered nextbest-response/2 as challenger" in trained.stdout
    assert "fitting global" in trained.stderr  # nextbest's own progress stays
    for text in LIBRARY_TEXT:
        assert text not in screen, text
    assert trained.stderr.rstrip().endswith(f"library messages: {log}")
    filed = log.read_text()
    assert "CloudPickle" in filed and "WARNING mlflow" in filed
    assert "input example was not provided" not in filed  # the logged model has one

    # Loading the champion: no progress bar, and no pointer when no library had anything to say.
    size = log.stat().st_size
    ranked = _run(ws.root, "rank", "--customer-id", "3", "--at", trained_workspace.as_of)
    for text in LIBRARY_TEXT:
        assert text not in _screen(ranked), text
    if log.stat().st_size == size:
        assert "library messages" not in ranked.stderr
