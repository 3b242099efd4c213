"""Opening the warehouse: schema on write connections, DuckDB's memory cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.errors import BadInputError
from nextbest.warehouse.db import MEMORY_ENV, connect


def _limit(con) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_memory_limit_caps_duckdb_and_spills_next_to_the_warehouse(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    path = tmp_path / "warehouse.duckdb"
    con = connect(path, memory_limit="512MB")
    assert _limit(con) == "488.2 MiB"  # DuckDB reads MB as 10^6 bytes and prints MiB
    assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == f"{path}.tmp"
    assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == 0  # the schema is there
    con.close()
    reader = connect(path, read_only=True, memory_limit="1GB")
    assert _limit(reader) == "953.6 MiB"
    reader.close()


def test_environment_overrides_the_callers_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "256MB")
    con = connect(tmp_path / "warehouse.duckdb", memory_limit="2GB")
    assert _limit(con) == "244.1 MiB"
    con.close()


@pytest.mark.parametrize(
    ("env", "given", "message"),
    [
        (None, "lots", r"memory_limit: 'lots' is not a memory size; use e.g. 2GB or 512MB"),
        ("12 parsecs", None, rf"{MEMORY_ENV}: '12 parsecs' is not a memory size; use e.g. 2GB or 512MB"),
    ],
)
def test_bad_memory_size_names_the_setting(tmp_path: Path, monkeypatch, env: str | None, given: str | None,
                                           message: str) -> None:
    if env is None:
        monkeypatch.delenv(MEMORY_ENV, raising=False)
    else:
        monkeypatch.setenv(MEMORY_ENV, env)
    with pytest.raises(BadInputError, match=message):
        connect(tmp_path / "warehouse.duckdb", memory_limit=given)


def _progress_bar_setting(path: str) -> tuple[bool, bool]:
    import duckdb

    plain = duckdb.connect().execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    con = connect(path)
    try:
        return plain, con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    finally:
        con.close()


def test_no_progress_bar_even_where_duckdb_would_draw_one(tmp_path: Path) -> None:
    """A spawned worker is a process DuckDB draws progress bars on stdout in; the warehouse never does."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        plain, ours = pool.submit(_progress_bar_setting, str(tmp_path / "w.duckdb")).result(timeout=120)
    assert plain is True  # DuckDB's own default there: the reason for the setting
    assert ours is False
