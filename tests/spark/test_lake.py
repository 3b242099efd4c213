"""``nextbest data export``: every warehouse table round-trips through the Parquet lake."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.errors import BadInputError
from nextbest.spark.lake import feature_tables, lake_tables, main_tables, table_dir
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace
from tests.spark.conftest import WorldLake


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_every_table_round_trips(world_lake: WorldLake) -> None:
    con = connect(world_lake.ws.warehouse_path, read_only=True)
    try:
        tables = [*main_tables(con), *feature_tables(con)]
        assert {"customers", "interactions", "transactions", "life_events", "decisions", "responses",
                "consent_changes", "features.customer_snapshot", "features.offer_history",
                "features.manifest"} <= set(tables)
        assert set(lake_tables(world_lake.lake)) == set(tables)
        for table in tables:
            want = con.execute(f"SELECT * FROM {table}").df()
            path = str(table_dir(world_lake.lake, table) / "*.parquet")
            got = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").df()
            assert len(got) == len(want), table
            if table == "customers" or len(want) > 0:
                pd.testing.assert_frame_equal(_sorted(got[list(want.columns)]), _sorted(want), obj=table)
    finally:
        con.close()
    # One file per snapshot, each with its as_of column.
    snaps = sorted(p.name for p in table_dir(world_lake.lake, "features.customer_snapshot").glob("*.parquet"))
    assert snaps[0] == "as_of-2024-01-08T000000.parquet" and len(snaps) == 6
    assert not any(p.name.startswith(".") for p in world_lake.lake.iterdir())  # no staging left behind


def test_export_replaces_tables_and_keeps_nothing_stale(world_lake: WorldLake, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "customers").mkdir(parents=True)
    (lake / "customers" / "stale.parquet").write_bytes(b"not parquet")
    result = CliRunner().invoke(app, ["--workspace", str(world_lake.ws.root), "data", "export", "--output", str(lake),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (lake / "customers").iterdir()] == ["part-00000.parquet"]


@pytest.mark.parametrize(("args", "message"), [
    (["data", "export", "--output", "{file}"], "is a file; name a folder for the lake"),
    (["features", "build", "--engine", "spark"], "--engine spark needs --lake DIR"),
    (["features", "build", "--lake", "{lake}"], "--lake and --master belong to --engine spark"),
    (["train", "--engine", "spark"], "--engine spark needs --lake DIR"),
    (["train", "--master", "local[2]"], "--lake and --master belong to --engine spark"),
])
def test_bad_input(workspace: Workspace, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "file").write_text("x")
    connect(workspace.warehouse_path).close()
    args = [a.format(file=tmp_path / "file", lake=tmp_path) for a in args]
    result = CliRunner().invoke(app, ["--workspace", str(workspace.root), *args])
    # In-process the error propagates; `nextbest` (main) maps BadInputError to exit code 2.
    assert isinstance(result.exception, BadInputError), result.output
    assert result.exception.exit_code == 2 and message in str(result.exception)
