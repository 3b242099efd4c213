"""Import: validation messages, atomicity, keys, upsert, formats."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from nextbest.warehouse.db import connect
from nextbest.warehouse.importer import import_file
from nextbest.warehouse.schema import IMPORTABLE

from nextbest.errors import BadInputError

NOW = dt.datetime(2025, 1, 1, 12, 0)

# (case id, table, file text, fragments the message must contain: table/column, rows, fix)
BAD_FILES = [
    (
        "missing required column",
        "interactions",
        "customer_id,type\n1,web.view",
        ["interactions.ts", "required column(s) missing: ts", "Fix: add the column"],
    ),
    (
        "non-date in ts",
        "interactions",
        "customer_id,ts,type\n1,2024-01-01,web.view\n1,yesterday,web.search\n2,2024-13-45,app.open",
        ["interactions.ts", "2 row(s) are not a valid TIMESTAMP", "rows 2, 3", "'yesterday'", "ISO 8601"],
    ),
    (
        "unknown customer in a fact table",
        "transactions",
        "customer_id,ts,order_id\n1,2024-01-01,o2\n99,2024-01-02,o3",
        [
            "transactions.customer_id",
            "not in customers",
            "row 2",
            "'99'",
            "import these customers into 'customers' first",
        ],
    ),
    (
        "duplicate key within the file",
        "transactions",
        "customer_id,ts,order_id,category\n1,2024-01-01,o2,shoes\n2,2024-01-01,o3,shoes\n1,2024-01-01,o2,shoes",
        [
            "transactions.order_id, category",
            "repeat a (order_id, category) within the file",
            "rows 1, 3",
            "keep one row",
        ],
    ),
    (
        "duplicate key against existing rows",
        "customers",
        "customer_id\n4\n1\n2",
        ["customers.customer_id", "2 row(s) have a customer_id already in the warehouse", "rows 2, 3", "--upsert"],
    ),
    (
        "key defaulted on absent column collides",
        "transactions",
        "customer_id,ts,order_id\n1,2024-01-01,o9\n1,2024-01-02,o9",
        ["transactions.order_id, category", "within the file", "rows 1, 2", "'o9, unknown'"],
    ),
    (
        "date in the future",
        "interactions",
        "customer_id,ts,type\n1,2024-01-01,web.view\n1,2031-02-03 10:00:00,web.view",
        ["interactions.ts", "lie in the future (after 2025-01-01 12:00:00)", "row 2", "day and month swapped"],
    ),
    (
        "birth date in the future",
        "customers",
        "customer_id,birth_date\n4,2030-01-01",
        ["customers.birth_date", "lie in the future (after 2025-01-01)", "row 1"],
    ),
    (
        "value outside closed vocabulary",
        "customers",
        "customer_id,gender\n4,f\n5,female",
        ["customers.gender", "outside the allowed vocabulary", "row 2", "'female'", "use one of f, m, x"],
    ),
    (
        "life event outside vocabulary",
        "life_events",
        "customer_id,ts,event_type\n1,2024-01-01,married",
        ["life_events.event_type", "outside the allowed vocabulary", "row 1", "moved, contract_end, newsletter_signup"],
    ),
    (
        "response outcome outside vocabulary",
        "responses",
        "decision_id,ts,outcome\nd1,2024-03-03,bounce",
        ["responses.outcome", "outside the allowed vocabulary", "row 1", "conversion"],
    ),
    (
        "response to unknown decision",
        "responses",
        "decision_id,ts,outcome\nd404,2024-03-03,click",
        ["responses.decision_id", "not in decisions", "row 1", "import the decisions rows first"],
    ),
    (
        "channel not in the config",
        "customers",
        "customer_id,preferred_channel\n4,fax",
        ["customers.preferred_channel", "not in the config", "row 1", "channels.yaml"],
    ),
    (
        "unknown interaction family",
        "interactions",
        "customer_id,ts,type\n1,2024-01-01,tv.watch",
        ["interactions.type", "unknown family", "row 1", "features.yaml `families`"],
    ),
    (
        "malformed interaction type",
        "interactions",
        "customer_id,ts,type\n1,2024-01-01,pageview",
        ["interactions.type", "malformed", "row 1", "family.action[.detail]"],
    ),
    (
        "unknown extra column",
        "customers",
        "customer_id,emial,shoe_size\n4,a@b.nl,42",
        ["customers", "unknown column(s) 'emial' (did you mean 'email'?), 'shoe_size'", "drop them"],
    ),
    (
        "below minimum",
        "transactions",
        "customer_id,ts,order_id,amount\n1,2024-01-01,o5,-3.5",
        ["transactions.amount", "below the minimum 0", "row 1", "'-3.5'"],
    ),
    (
        "non-integer customer id",
        "customers",
        "customer_id\n4\nC12\n1.5",
        ["customers.customer_id", "2 row(s) are not a valid BIGINT", "rows 2, 3", "whole numbers"],
    ),
    (
        "empty required value",
        "interactions",
        "customer_id,ts,type\n1,,web.view",
        ["interactions.ts", "empty but the column is required", "row 1", "fill it on every row"],
    ),
    (
        "not a boolean",
        "customers",
        "customer_id,consent_email\n4,maybe",
        ["customers.consent_email", "not a valid BOOLEAN", "row 1", "true/false"],
    ),
    (
        "interactions re-imported",
        "interactions",
        "customer_id,ts,type\n1,2024-03-01 09:00:00,web.view.category.shoes",
        ["interactions", "identical to rows already in the warehouse", "row 1", "import only new rows"],
    ),
    (
        "many bad rows are counted, five shown",
        "customers",
        "customer_id,gender\n" + "\n".join(f"{i},?" for i in range(10, 20)),
        ["customers.gender", "10 row(s)", "rows 1, 2, 3, 4, 5, ..."],
    ),
]


@pytest.mark.parametrize(("case", "table", "text", "fragments"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_rejected_with_table_column_rows_and_fix(
    con, config, write, snapshot, case, table, text, fragments
) -> None:
    before = snapshot(con)
    path = write(f"{table}.csv", text)
    with pytest.raises(BadInputError) as err:
        import_file(con, table, path, config, now=NOW)
    message = str(err.value)
    assert f"into table '{table}'" in message and "nothing was written" in message
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in\n{message}"
    assert snapshot(con) == before


def test_every_problem_of_a_file_is_reported_at_once(con, config, write) -> None:
    path = write(
        "i.csv",
        "customer_id,ts,type\n1,2024-01-01,web.view\n2,later,web.view\n77,2024-01-01,web.view\n3,2024-01-01,Web.View",
    )
    with pytest.raises(BadInputError) as err:
        import_file(con, "interactions", path, config, now=NOW)
    message = str(err.value)
    assert "(3 problem(s))" in message
    assert "interactions.ts: 1 row(s) are not a valid TIMESTAMP (row 2" in message
    assert "interactions.customer_id: 1 row(s) name a customer_id not in customers (row 3" in message
    assert "interactions.type: 1 row(s) are malformed (row 4" in message


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.csv", None, "does not exist"),
        ("data.xlsx", "x", "unsupported file type"),
        ("empty.csv", "", "is empty"),
        ("broken.parquet", "not parquet", "not a readable Parquet file"),
    ],
)
def test_unreadable_file_is_bad_input(con, config, tmp_path, name, content, fragment) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(BadInputError, match=fragment):
        import_file(con, "customers", path, config, now=NOW)


def test_table_must_be_importable(con, config, write) -> None:
    with pytest.raises(BadInputError, match="--table 'orders' is not an importable table.*customers"):
        import_file(con, "orders", write("x.csv", "customer_id\n1"), config)


def test_start_from_customer_ids_and_transactions_only(workspace, config, write) -> None:
    con = connect(workspace.warehouse_path)
    ids = import_file(con, "customers", write("ids.csv", "customer_id\n10\n11\n12"), config, now=NOW)
    orders = import_file(
        con,
        "transactions",
        write("tx.csv", "customer_id,ts,order_id,amount\n10,2024-05-01 10:00,a1,19.5\n12,2024-06-01,a2,5"),
        config,
        now=NOW,
    )
    assert (ids.rows, orders.rows) == (3, 2)
    rows = con.execute("SELECT customer_id, order_id, category, amount FROM transactions ORDER BY order_id").fetchall()
    assert rows == [(10, "a1", "unknown", 19.5), (12, "a2", "unknown", 5.0)]
    assert con.execute("SELECT count(*) FROM customers WHERE gender IS NULL AND email IS NULL").fetchone()[0] == 3


def test_values_are_stored_typed_and_header_is_case_insensitive(con, config, write) -> None:
    path = write(
        "c.csv",
        "Customer_ID;Birth_Date;consent_email;distance_to_store_km;preferred_channel\n"
        "4;1980-02-29;true;3.25;sms\n5;;0;;",
    )
    assert import_file(con, "customers", path, config, now=NOW).rows == 2
    rows = con.execute(
        "SELECT customer_id, birth_date, consent_email, distance_to_store_km, preferred_channel "
        "FROM customers WHERE customer_id >= 4 ORDER BY 1"
    ).fetchall()
    assert rows == [(4, dt.date(1980, 2, 29), True, 3.25, "sms"), (5, None, False, None, None)]


def test_parquet_is_validated_like_csv(con, config, tmp_path) -> None:
    good = tmp_path / "ok.parquet"
    pd.DataFrame(
        {"customer_id": [1, 2], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]), "type": ["app.open", "email.open"]}
    ).to_parquet(good)
    assert import_file(con, "interactions", good, config, now=NOW).format == "parquet"
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"customer_id": ["1", "x"], "ts": ["2024-01-01", "2024-01-01"], "type": ["app.open"] * 2}).to_parquet(
        bad
    )
    with pytest.raises(
        BadInputError, match=r"interactions.customer_id: 1 row\(s\) are not a valid BIGINT \(row 2; e.g. 'x'\)"
    ):
        import_file(con, "interactions", bad, config, now=NOW)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_row_numbers_hold_in_large_files(con, config, tmp_path, fmt) -> None:
    # Big enough for DuckDB to read the file in several parallel chunks.
    path = tmp_path / f"big.{fmt}"
    rows = duckdb.sql(
        "SELECT 1 AS customer_id, CASE WHEN i IN (150001, 199998) THEN 'never' ELSE '2024-01-01 10:00:00' END AS ts, "
        "'web.view.category.shoes' AS type FROM range(1, 200001) t(i)"
    )
    if fmt == "csv":
        rows.write_csv(str(path))
    else:
        rows.write_parquet(str(path))
    with pytest.raises(BadInputError, match=r"2 row\(s\) are not a valid TIMESTAMP \(rows 150001, 199998;"):
        import_file(con, "interactions", path, config, now=NOW)


def test_upsert_updates_only_the_file_columns(con, config, write) -> None:
    path = write("consent.csv", "customer_id,consent_email\n2,true\n4,false")
    result = import_file(con, "customers", path, config, upsert=True, now=NOW)
    assert result.rows == 2 and result.upsert
    rows = con.execute("SELECT customer_id, gender, email, consent_email FROM customers ORDER BY 1").fetchall()
    assert rows == [
        (1, "f", "ann@example.com", True),
        (2, "m", "bob@example.com", True),  # updated consent, other columns kept
        (3, None, None, None),
        (4, None, None, False),  # new customer inserted
    ]


def test_upsert_needs_a_key(con, config, write) -> None:
    with pytest.raises(BadInputError, match="--upsert needs a table with a key; interactions has none"):
        import_file(
            con, "interactions", write("i.csv", "customer_id,ts,type\n1,2024-01-01,app.open"), config, upsert=True
        )


def test_same_file_twice_is_rejected_the_second_time(con, config, write, snapshot) -> None:
    path = write("i.csv", "customer_id,ts,type\n2,2024-02-01,app.open\n3,2024-02-02,email.click.newsletter")
    assert import_file(con, "interactions", path, config, now=NOW).rows == 2
    before = snapshot(con)
    with pytest.raises(BadInputError, match=r"2 row\(s\) are identical to rows already in the warehouse \(rows 1, 2"):
        import_file(con, "interactions", path, config, now=NOW)
    assert snapshot(con) == before


def test_temporary_staging_tables_are_dropped(con, config, write) -> None:
    with pytest.raises(BadInputError):
        import_file(con, "customers", write("c.csv", "customer_id\nx"), config)
    import_file(con, "customers", write("d.csv", "customer_id\n9"), config)
    temp = con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0]
    assert temp == 0


def test_import_result_reports_rows_and_file(con, config, write) -> None:
    path: Path = write("c.csv", "customer_id\n20\n21")
    doc = import_file(con, "customers", path, config).as_dict()
    assert doc["table"] == "customers" and doc["rows"] == 2 and doc["file"] == str(path) and doc["format"] == "csv"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_generated_world_round_trips_through_import(world_warehouse, workspace, config, snapshot, fmt) -> None:
    """Every contract table exported by the synthetic world imports unchanged into an empty warehouse."""
    source = duckdb.connect(str(world_warehouse), read_only=True)
    target = connect(workspace.warehouse_path)
    folder = workspace.root / "export"
    folder.mkdir()
    for table in IMPORTABLE:  # in dependency order: customers and decisions before what refers to them
        path = folder / f"{table}.{fmt}"
        source.execute(f"COPY {table} TO '{path}' ({'HEADER' if fmt == 'csv' else 'FORMAT parquet'})")
        assert import_file(target, table, path, config).rows > 0
    exported, imported = snapshot(source), snapshot(target)
    assert imported == {t: exported[t] for t in imported}
    source.close()
    target.close()
