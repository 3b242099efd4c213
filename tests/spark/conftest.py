"""One Spark session (local mode, two cores) shared by every Spark test of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'nextbest[spark]')")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from nextbest.spark.session import get_session

    session = get_session("local[2]")
    yield session
    session.stop()
