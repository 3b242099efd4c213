"""`nextbest data import | quality | summary | forget` through the real entry point: output and exit codes."""

from __future__ import annotations

import json
import sys

import pytest

from nextbest.cli import main
from nextbest.workspace import Workspace


@pytest.fixture
def run(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``run(*args) -> (exit code, stdout, stderr)`` of ``nextbest --workspace WS *args``."""

    def _run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["nextbest", "--workspace", str(workspace.root), *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


@pytest.fixture
def files(tmp_path):
    (tmp_path / "customers.csv").write_text(
        "customer_id,email,consent_email,valid_email\n1,a@example.com,true,true\n2,,,\n"
    )
    (tmp_path / "tx.csv").write_text("customer_id,ts,order_id,amount\n1,2024-01-01 10:00,o1,12.5\n")
    (tmp_path / "bad.csv").write_text("customer_id,ts,order_id\n7,2024-01-01,o2\n")
    return tmp_path


def test_import_then_reports(run, files) -> None:
    code, out, _ = run("data", "import", "--table", "customers", str(files / "customers.csv"))
    assert code == 0 and "imported 2 rows into customers" in out
    code, out, _ = run("data", "import", "--table", "transactions", str(files / "tx.csv"), "--json")
    assert code == 0 and json.loads(out)["rows"] == 1

    code, out, _ = run("data", "quality", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["customers"] == 2
    assert {c["name"]: c["count"] for c in report["checks"]}["unreachable"] == 1
    code, out, _ = run("data", "quality")
    assert code == 0 and "Customer checks" in out and "Consent per channel" in out

    code, out, _ = run("data", "summary", "--json")
    assert code == 0 and json.loads(out)["tables"]["main.transactions"] == 1
    code, out, _ = run("data", "summary")
    assert code == 0 and "main.customers" in out


def test_bad_import_exits_2_with_the_message(run, files) -> None:
    run("data", "import", "--table", "customers", str(files / "customers.csv"))
    code, out, err = run("data", "import", "--table", "transactions", str(files / "bad.csv"))
    assert code == 2 and out == ""
    assert "transactions.customer_id: 1 row(s) name a customer_id not in customers (row 1" in err


def test_forget_exit_codes_and_audit(run, files, workspace) -> None:
    run("data", "import", "--table", "customers", str(files / "customers.csv"))
    code, out, _ = run("data", "forget", "--customer-id", "1", "--json")
    assert code == 0 and json.loads(out)["tables"] == {"main.customers": 1}
    assert workspace.audit_log.exists()
    code, _, err = run("data", "forget", "--customer-id", "1")
    assert code == 2 and "customer_id 1 is not in the warehouse" in err


@pytest.mark.parametrize(
    "command", [["data", "quality"], ["data", "summary"], ["data", "forget", "--customer-id", "1"]]
)
def test_missing_warehouse_is_bad_input(run, command) -> None:
    code, _, err = run(*command)
    assert code == 2 and "no warehouse at" in err
