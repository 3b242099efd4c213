"""Mappings: files in another layout, loaded through DuckDB expressions, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError
from nextbest.warehouse.mapping import import_mapped, load_mapping

#: A CRM export: other names, dates written day first, amounts in cents.
CRM = """
Cust No,Joined,Area,Order No,Order Time,Cents
101,05/01/2023,URBAN,A-1,2024-02-01 10:00:00,1250
102,17/06/2022,rural,A-2,2024-02-03 11:30:00,990
103,,Rural,,,
"""

MAPPING = """
description: a CRM export
tables:
  - table: customers
    columns:
      customer_id: '"Cust No"'
      member_since: Joined            # DuckDB reads the day-first dates as DATE
      urbanity: lower(Area)
      consent_email: true
  - table: transactions
    where: '"Order No" IS NOT NULL'
    columns:
      customer_id: '"Cust No"'
      ts: '"Order Time"'
      order_id: "'crm-' || \\"Order No\\""
      amount: Cents / 100
"""


@pytest.fixture
def crm(write: Callable[[str, str], Path]) -> Path:
    return write("crm.csv", CRM)


def test_a_mapping_renames_and_derives_columns_into_several_tables(
    con: duckdb.DuckDBPyConnection, config: NextbestConfig, crm: Path, write: Callable[[str, str], Path]
) -> None:
    results = import_mapped(con, load_mapping(write("crm.yaml", MAPPING)), crm, config)
    assert [(r.table, r.rows) for r in results] == [("customers", 3), ("transactions", 2)]
    customers = con.execute(
        "SELECT customer_id, CAST(member_since AS VARCHAR), urbanity, consent_email FROM customers "
        "WHERE customer_id > 100 ORDER BY 1"
    ).fetchall()
    assert customers == [(101, "2023-01-05", "urban", True), (102, "2022-06-17", "rural", True),
                         (103, None, "rural", True)]
    orders = con.execute(
        "SELECT customer_id, order_id, category, amount FROM transactions WHERE customer_id > 100 ORDER BY 1"
    ).fetchall()
    assert orders == [(101, "crm-A-1", "unknown", 12.5), (102, "crm-A-2", "unknown", 9.9)]


def _mapping(columns: str, *, where: str = "", table: str = "customers") -> str:
    return f"tables:\n  - table: {table}\n{where}    columns:\n{columns}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tables: []", "tables: Tuple should have at least 1 item"),
        (_mapping("      customer_id: _row", table="clients"),
         "tables[0].table: unknown table 'clients'; use one of customers"),
        ("tables:\n  - table: customers\n    colums: {customer_id: _row}", "tables[0].colums: Extra inputs are not permitted"),
        (_mapping("      customer_id: ''"), "column 'customer_id': write an SQL expression"),
        (_mapping('      customer_id: "Cust No"'), "tables[0].columns.customer_id: expression 'Cust No' failed"),
        (_mapping('      customer_id: \'"Cust No"\'\n      urbanity: lower(area_type)'),
         "tables[0].columns.urbanity: expression 'lower(area_type)' failed: Binder Error: Referenced column "
         '"area_type" not found'),
        (_mapping('      customer_id: \'"Cust No"\'\n      birth_date: CAST(Area AS DATE)'),
         "tables[0].columns.birth_date: expression 'CAST(Area AS DATE)' failed: Conversion Error"),
        (_mapping('      customer_id: \'"Cust No"\'', where="    where: Cents >> 'x'\n"),
         "tables[0].where: expression \"Cents >> 'x'\" failed"),
        (_mapping('      customer_id: "1) AS x FROM t; DROP TABLE customers; SELECT (1"'),
         "is not a single SQL expression"),
        (_mapping('      customer_id: \'"Cust No"\'\n      urbanty: Area'),
         "unknown column(s) 'urbanty' (did you mean 'urbanity'?)"),
        (_mapping("      urbanity: lower(Area)"), "required column(s) missing: customer_id"),
        (_mapping('      customer_id: \'"Cust No"\'\n      urbanity: Area'),
         "customers.urbanity: 2 row(s) hold a value outside the allowed vocabulary (rows 1, 3; e.g. 'URBAN')"),
    ],
)
def test_bad_mappings_name_the_field_and_write_nothing(
    text: str, message: str, con: duckdb.DuckDBPyConnection, config: NextbestConfig, crm: Path,
    write: Callable[[str, str], Path], snapshot: Callable[[duckdb.DuckDBPyConnection], dict[str, list[tuple[object, ...]]]],
) -> None:
    before = snapshot(con)
    with pytest.raises(BadInputError) as err:
        import_mapped(con, load_mapping(write("bad.yaml", text)), crm, config)
    assert message in str(err.value)
    assert snapshot(con) == before


def test_a_later_table_failing_rolls_back_the_earlier_ones(
    con: duckdb.DuckDBPyConnection, config: NextbestConfig, crm: Path, write: Callable[[str, str], Path],
) -> None:
    # The orders point at customers 999 (unknown): the customers mapped before them are not kept either.
    bad = MAPPING.replace("      customer_id: '\"Cust No\"'\n      ts", "      customer_id: 999\n      ts")
    with pytest.raises(BadInputError, match=r"transactions.customer_id: 2 row\(s\) name a customer_id not in customers"):
        import_mapped(con, load_mapping(write("bad.yaml", bad)), crm, config)
    assert con.execute("SELECT count(*) FROM customers WHERE customer_id > 100").fetchone()[0] == 0
