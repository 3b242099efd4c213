"""Shared fixtures: a fresh workspace per test, small and fast; a throwaway PostgreSQL."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextbest.workspace import Workspace
from tests.attributes_world import AttributeWorld, attribute_rows
from tests.attributes_world import build as build_attribute_world
from tests.postgres import PostgresCluster, bindir_or_skip
from tests.trained_world import TrainedWorkspace
from tests.trained_world import build as build_trained_workspace

#: Numbers the per-test databases: test names repeat across parametrisations and modules.
_DATABASE_NUMBERS = itertools.count(1)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """An initialised, empty workspace with its own MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("NEXTBEST_WORKSPACE", str(tmp_path / "ws"))
    ws = Workspace.resolve(tmp_path / "ws")
    ws.init_config()
    return ws


@pytest.fixture(scope="session")
def postgres_bindir() -> Path:
    """The PostgreSQL server binaries; skips the test without them (fails it when ``CI=true``)."""
    return bindir_or_skip()


@pytest.fixture(scope="session")
def postgres(postgres_bindir: Path) -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster shared by the session (per xdist worker: one each).

    Started on first use, stopped and removed at the end of the session, whether the
    tests passed or not. Tests must not stop or kill it: a crash test starts its own
    ``PostgresCluster``.
    """
    with PostgresCluster(bindir=postgres_bindir) as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database of this test on the shared cluster; dropped afterwards."""
    # Named after the test, to tell whose database a server log line is about.
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t{next(_DATABASE_NUMBERS)}_{stem}".rstrip("_")
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def attribute_world() -> Iterator[AttributeWorld]:
    """A trained workspace with declared attributes of every type (:mod:`tests.attributes_world`).

    In a folder of this session only (not ``tmp_path_factory``, whose base folders a concurrent
    run may delete while a server uses them).
    """
    root = Path(tempfile.mkdtemp(prefix="nextbest-attributes-"))
    prebuilt = os.environ.get("NEXTBEST_ATTRIBUTES_TEST_WORKSPACE")  # iterate without rebuilding it
    try:
        if prebuilt:
            shutil.copytree(prebuilt, root / "ws")
            yield AttributeWorld(root / "ws", attribute_rows(root / "ws" / "warehouse.duckdb"))
        else:
            yield build_attribute_world(root / "ws")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def private_tmp() -> Iterator[Path]:
    """A temporary folder of this session only.

    Not pytest's ``tmp_path_factory``: pytest keeps the last three base folders of
    *any* run, so a colleague's concurrent run could delete a workspace a server is using.
    """
    root = Path(tempfile.mkdtemp(prefix="nextbest-serving-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def trained_workspace(private_tmp: Path) -> TrainedWorkspace:
    """A trained workspace (:mod:`tests.trained_world`), built with the real CLI, or copied from
    ``$NEXTBEST_SERVING_TEST_WORKSPACE`` (a trained workspace, to iterate without regenerating it).

    Shared by the ``server`` xdist group (the serving tests and the simulation through the service).
    """
    return build_trained_workspace(private_tmp / "trained", os.environ.get("NEXTBEST_SERVING_TEST_WORKSPACE"))


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker; declare it too so `-p no:xdist` runs stay strict-clean.
    config.addinivalue_line("markers", "xdist_group(name): run in one xdist worker with the group's other tests")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each grouped test the ``@<group>`` node-id suffix ``--dist loadgroup`` schedules by.

    pytest-xdist 3.8 (the newest release) adds the suffix by assigning ``item._nodeid``, which
    pytest 9 no longer reads (a node's id is ``item._id``): every group was scattered over the
    workers, each building the group's session fixtures (the trained workspace: minutes) and
    starting servers at the same time. Runs after xdist's hook, on the workers, where it applies.
    """
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers under --dist loadgroup
        return
    from _pytest.nodeid import coerce_node_id  # pytest 9's node ids; nothing public sets one

    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)


def spark_or_skip() -> None:
    """End the calling test without pyspark or a Java runtime (fail it under ``CI=true``, where
    ``.ci/run`` installs Java and ``make setup`` the spark extra: a skip there would hide the gap)."""
    import importlib.util

    missing = [m for m in ("pyspark", "sqlglot") if importlib.util.find_spec(m) is None]
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").exists()):
        missing.append("java (Debian: apt-get install openjdk-17-jre-headless)")
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Spark tests need {', '.join(missing)}; .ci/run and `make setup` should have installed them",
                    pytrace=False)
    pytest.skip(f"Spark tests need {', '.join(missing)}")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local[2] SparkSession for the whole run (per xdist worker; Spark tests share the
    ``spark`` xdist group, so one worker pays the JVM start-up once)."""
    spark_or_skip()
    from nextbest.spark.session import get_session

    session = get_session("local[2]")
    yield session
    session.stop()
