"""``nextbest data generate`` end to end, through the CLI entry point (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from nextbest.cli import main


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``nextbest *args`` as the console script does; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["nextbest", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_initialises_the_workspace_and_fills_the_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "fresh"
    code, out, err = _run(monkeypatch, capsys, "--workspace", str(ws), "data", "generate", "-n", "300", "--days", "21", "--seed", "3", "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert (ws / "config" / "offers.yaml").exists()
    con = duckdb.connect(str(ws / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == counts["customers"] > 0
        assert con.execute("SELECT count(*) FROM interactions").fetchone()[0] == counts["interactions"] > 0
        assert con.execute("SELECT count(*) FROM ground_truth.decision_truth").fetchone()[0] == counts["decisions"] > 0
    finally:
        con.close()

    code, _, err = _run(monkeypatch, capsys, "--workspace", str(ws), "data", "generate", "-n", "300", "--days", "21")
    assert code == 2 and "--replace" in err
    code, out, err = _run(monkeypatch, capsys, "--workspace", str(ws), "data", "generate", "-n", "200", "--days", "7", "--replace")
    assert code == 0, err
    assert "customers" in out and "took" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--customers", "0"), "--customers must be at least 1"),
        (("--days", "0"), "--days must be at least 1"),
        (("--start", "2024-13-01"), "--start: '2024-13-01' is not a date; use YYYY-MM-DD"),
    ],
)
def test_generate_rejects_bad_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, _, err = _run(monkeypatch, capsys, "--workspace", str(tmp_path / "ws"), "data", "generate", *args)
    assert code == 2
    assert message in err
