"""Libraries' messages go to the workspace's log file; nextbest's own stay on screen (nextbest.logfile)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from nextbest import logfile

# In a fresh interpreter: routing changes process-wide logging and warnings.
_SCRIPT = textwrap.dedent(
    """
    import logging, sys, warnings
    from pathlib import Path
    from nextbest import logfile

    logfile.route_library_output(Path(sys.argv[1]))
    import optuna
    import mlflow
    from mlflow.utils.logging_utils import eprint

    logging.getLogger("mlflow.store").info("a library's info line")
    eprint("Successfully registered model 'x'.")
    optuna.logging.get_logger("optuna.study").warning("a library's warning")
    logging.getLogger("nextbest.models").warning("our own warning")
    warnings.warn_explicit("a library warning", UserWarning, mlflow.__file__, 1)
    warnings.warn("our warning", UserWarning)  # raised in this script: not a library's
    print(logfile.pointer())
    """
)


def test_library_output_is_filed_and_ours_is_shown(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    ws = tmp_path / "ws"
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": ""}
    done = subprocess.run([sys.executable, str(script), str(ws)], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in env.items() if v})
    assert done.returncode == 0, done.stderr
    screen = done.stdout + done.stderr
    assert "our own warning" in done.stderr
    assert "our warning" in done.stderr
    for text in ("a library's info line", "Successfully registered", "a library's warning", "a library warning"):
        assert text not in screen, text
    filed = (ws / logfile.LOG_FILE).read_text()
    for text in ("a library's info line", "Successfully registered model 'x'.", "a library's warning",
                 "UserWarning: a library warning"):
        assert text in filed, text
    assert done.stdout.strip() == f"library messages: {ws / logfile.LOG_FILE}"


def test_nothing_written_means_no_file_and_no_pointer(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from nextbest import logfile; "
         "logfile.route_library_output(Path(sys.argv[1])); import os; "
         "print(logfile.pointer(), os.environ['MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR'])", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "false"]
    assert not (tmp_path / "logs").exists()


def test_warnings_from_nextbest_code_are_ours() -> None:
    import mlflow

    assert logfile.is_ours(logfile.__file__)
    assert not logfile.is_ours(mlflow.__file__)
    assert not logfile.is_ours("<string>")


def test_a_childs_stderr_goes_to_the_file(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys; from pathlib import Path; from nextbest import logfile\n"
        "assert logfile.open_for_child('child') is None  # not routed: the child keeps our stderr\n"
        "logfile.route_library_output(Path(sys.argv[1]))\n"
        "with logfile.open_for_child('child') as stream:\n"
        "    subprocess.run(['sh', '-c', 'echo a line of the child >&2'], stderr=stream, check=True)\n"
        "print(logfile.pointer())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.strip() == f"library messages: {tmp_path / logfile.LOG_FILE}"
    lines = (tmp_path / logfile.LOG_FILE).read_text().splitlines()
    assert lines[0].endswith("INFO child: child's output follows in this file")
    assert lines[1:] == ["a line of the child"]
