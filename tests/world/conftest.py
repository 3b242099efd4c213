"""A small generated world shared by the world tests (generated once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from nextbest.warehouse.db import connect
from nextbest.world import World

N_CUSTOMERS = 1500
DAYS = 60
SEED = 42


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path, dict[str, int]]:
    """A world of 1,500 customers x 60 days written to a DuckDB file; returns (world, path, counts)."""
    path = tmp_path_factory.mktemp("world") / "warehouse.duckdb"
    world = World.create(N_CUSTOMERS, seed=SEED)
    con = connect(path)
    try:
        counts = world.write_history(con, DAYS)
    finally:
        con.close()
    return world, path, counts


@pytest.fixture
def con(generated: tuple[World, Path, dict[str, int]]) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only connection to the generated warehouse."""
    c = duckdb.connect(str(generated[1]), read_only=True)
    yield c
    c.close()
