"""Declared attributes in the warehouse: imported into customers, typed, never silently retyped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from nextbest.config import NextbestConfig, load_config
from nextbest.errors import BadInputError
from nextbest.warehouse.attributes import ensure_attribute_columns
from nextbest.warehouse.importer import import_file
from nextbest.workspace import Workspace

DECLARED = """
attributes:
  - {name: loyalty_tier, type: category}
  - {name: crm_score, type: number}
  - {name: is_vip, type: boolean}
  - {name: contract_start, type: date}
  - {name: nickname, type: category, personal: true}
"""


def _config(workspace: Workspace, attributes: str = DECLARED) -> NextbestConfig:
    path = workspace.config_dir / "features.yaml"
    base = path.read_text().split("\nattributes:")[0]
    path.write_text(base + "\n" + attributes)
    return load_config(workspace.config_dir)


def test_each_type_imports_into_customers(
    workspace: Workspace, con: duckdb.DuckDBPyConnection, write: Callable[[str, str], Path]
) -> None:
    config = _config(workspace)
    path = write("attrs.csv", """
customer_id,loyalty_tier,crm_score,is_vip,contract_start,nickname
1,gold,712.5,true,2023-04-01,Annie
2,,,false,,
""")
    assert import_file(con, "customers", path, config, upsert=True).rows == 2
    rows = con.execute(
        "SELECT customer_id, loyalty_tier, crm_score, is_vip, contract_start, nickname, gender FROM customers "
        "WHERE customer_id IN (1, 2) ORDER BY 1"
    ).fetchall()
    # An upsert updates the file's columns only: gender stays.
    assert rows == [(1, "gold", 712.5, True, dt.date(2023, 4, 1), "Annie", "f"), (2, None, None, False, None, None, "m")]
    types = dict(con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'customers'"
    ).fetchall())
    assert [types[c] for c in ("loyalty_tier", "crm_score", "is_vip", "contract_start", "nickname")] == [
        "VARCHAR", "DOUBLE", "BOOLEAN", "DATE", "VARCHAR"]


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("crm_score", "high", "customers.crm_score: 1 row(s) are not a valid DOUBLE (row 1; e.g. 'high')"),
        ("is_vip", "maybe", "customers.is_vip: 1 row(s) are not a valid BOOLEAN (row 1; e.g. 'maybe')"),
        ("contract_start", "31/01/2023", "customers.contract_start: 1 row(s) are not a valid DATE (row 1; e.g."),
        ("loyalty_teir", "gold", "unknown column(s) 'loyalty_teir' (did you mean 'loyalty_tier'?)"),
        ("crm_scores", "1", "declared in features.yaml `attributes`"),
    ],
)
def test_bad_attribute_values_are_rejected_with_row_and_fix(
    header: str, row: str, message: str, workspace: Workspace, con: duckdb.DuckDBPyConnection,
    write: Callable[[str, str], Path],
) -> None:
    config = _config(workspace)
    with pytest.raises(BadInputError) as err:
        import_file(con, "customers", write("bad.csv", f"customer_id,{header}\n1,{row}"), config, upsert=True)
    assert message in str(err.value)


def test_personal_attribute_values_stay_out_of_messages(
    workspace: Workspace, con: duckdb.DuckDBPyConnection, write: Callable[[str, str], Path]
) -> None:
    config = _config(workspace, "attributes:\n  - {name: partner_birth, type: date, personal: true}\n")
    with pytest.raises(BadInputError) as err:
        import_file(con, "customers", write("bad.csv", "customer_id,partner_birth\n1,Sunday 3 May"), config,
                    upsert=True)
    assert "customers.partner_birth: 1 row(s) are not a valid DATE" in str(err.value)
    assert "Sunday" not in str(err.value)


def test_changing_the_type_of_loaded_values_is_an_error_naming_the_fix(
    workspace: Workspace, con: duckdb.DuckDBPyConnection, write: Callable[[str, str], Path]
) -> None:
    config = _config(workspace)
    import_file(con, "customers", write("a.csv", "customer_id,loyalty_tier\n1,gold"), config, upsert=True)
    retyped = _config(workspace, DECLARED.replace("{name: loyalty_tier, type: category}",
                                                  "{name: loyalty_tier, type: number}"))
    with pytest.raises(BadInputError) as err:
        import_file(con, "customers", write("b.csv", "customer_id,loyalty_tier\n2,3"), retyped, upsert=True)
    assert str(err.value) == (
        "features.yaml: attribute 'loyalty_tier' is declared type number, but customers already holds 1 "
        "loyalty_tier value(s) of type category (VARCHAR). Fix: declare it `type: category` again, or declare "
        "the new type under a new name (e.g. loyalty_tier_number) and import the column under that name; the "
        "loaded values stay where they are"
    )
    assert con.execute("SELECT loyalty_tier FROM customers WHERE customer_id = 1").fetchone()[0] == "gold"


def test_a_declared_column_without_values_follows_a_new_type(
    workspace: Workspace, con: duckdb.DuckDBPyConnection
) -> None:
    assert ensure_attribute_columns(con, _config(workspace)) == [
        "loyalty_tier", "crm_score", "is_vip", "contract_start", "nickname"]
    retyped = _config(workspace, DECLARED.replace("type: boolean", "type: number"))
    assert ensure_attribute_columns(con, retyped) == ["is_vip"]
    assert ensure_attribute_columns(con, retyped) == []
    typ = con.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'is_vip'"
    ).fetchone()[0]
    assert typ == "DOUBLE"
