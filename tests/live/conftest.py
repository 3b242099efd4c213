"""Fixtures of the live-store tests: the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nextbest.config import NextbestConfig
from nextbest.live.store import LiveStore
from nextbest.workspace import Workspace


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty live store's URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}"
    request.applymarker(pytest.mark.postgres)
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[LiveStore]:
    s = LiveStore(store_url, writer="test")
    yield s
    s.close()


@pytest.fixture
def config(tmp_path: Path) -> NextbestConfig:
    """The default configuration with a tight contact policy: one contact a week."""
    ws = Workspace.resolve(tmp_path / "cfg")
    ws.init_config()
    policy = ws.config_dir / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_contacts: 2", "max_contacts: 1"))
    return ws.config()
