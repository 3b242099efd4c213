"""The throwaway PostgreSQL cluster the live store is tested on (tests/postgres.py).

Real servers throughout: the shared ``postgres`` fixture for what a test must not
change, and clusters of their own for stop, crash and clean-up behaviour.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

import tests.postgres as pg
from tests.postgres import PostgresCluster

REPO = Path(__file__).resolve().parents[2]


def refuses(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` is refused (nothing listens there)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def tcp_listeners(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: TCP_LISTEN
                assert len(address) == width
                if width == 8:  # one little-endian 32-bit word
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:  # four little-endian 32-bit words
                    words = bytes.fromhex(address)
                    raw = b"".join(words[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_fixture_url_accepts_a_sqlalchemy_connection_with_psycopg(postgres_url: str) -> None:
    url = sa.make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.username, url.password) == ("127.0.0.1", "postgres", None)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.dialect.driver == "psycopg"
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == url.database
            assert int(conn.execute(sa.text("SHOW server_version_num")).scalar()) >= 150000
            conn.execute(sa.text("CREATE TABLE probe (id integer PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (1)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM probe")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_fsync_and_synchronous_commit_are_on(postgres: PostgresCluster) -> None:
    assert scalar(postgres.url, "SHOW fsync") == "on"
    assert scalar(postgres.url, "SHOW synchronous_commit") == "on"
    assert scalar(postgres.url, "SHOW full_page_writes") == "on"


@pytest.mark.postgres
def test_listens_on_127_0_0_1_only_and_keeps_its_socket_in_its_folder(postgres: PostgresCluster) -> None:
    assert postgres.port is not None and postgres.root is not None
    assert scalar(postgres.url, "SHOW listen_addresses") == "127.0.0.1"
    assert tcp_listeners(postgres.port) == {"127.0.0.1"}
    # Another loopback address reaches the same interface: refused, since the bind is 127.0.0.1 only.
    assert refuses("127.0.0.2", postgres.port)
    socket_dir = Path(str(scalar(postgres.url, "SHOW unix_socket_directories")))
    assert socket_dir == postgres.socket_dir
    assert (socket_dir / f".s.PGSQL.{postgres.port}").is_socket()
    # Outside the kernel's ephemeral range, where other tests' `bind(port=0)` picks come from.
    assert postgres.port not in pg._ephemeral_ports()


@pytest.mark.postgres
def test_server_runs_as_an_unprivileged_account(postgres: PostgresCluster) -> None:
    pid = postgres.pid
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    real, effective = map(int, next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:3])
    if os.geteuid() == 0:  # initdb and postgres refuse root: they run as `nobody`
        expected = pwd.getpwnam(pg.UNPRIVILEGED_USER).pw_uid
        assert expected != 0
    else:
        expected = os.geteuid()
    assert real == effective == expected
    assert postgres.data_dir.stat().st_uid == expected


@pytest.mark.postgres
def test_create_database_gives_independent_databases(postgres: PostgresCluster) -> None:
    first, second = postgres.create_database(), postgres.create_database()
    assert first != second
    try:
        engine = sa.create_engine(first)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE decisions (id integer)"))
            conn.execute(sa.text("INSERT INTO decisions VALUES (7)"))
        engine.dispose()
        assert scalar(first, "SELECT sum(id) FROM decisions") == 7
        assert scalar(second, "SELECT to_regclass('decisions')") is None
        assert scalar(second, "SELECT current_database()") == sa.make_url(second).database
    finally:
        postgres.drop_database(sa.make_url(first).database)
        postgres.drop_database(sa.make_url(second).database)
    assert scalar(postgres.url, f"SELECT count(*) FROM pg_database WHERE datname = '{sa.make_url(first).database}'") == 0


@pytest.mark.postgres
def test_create_database_rejects_names_that_need_quoting(postgres: PostgresCluster) -> None:
    for name in ("Upper", "1st", "semi;colon", "x" * 64):
        with pytest.raises(ValueError, match="database name"):
            postgres.create_database(name)


@pytest.mark.postgres
def test_killed_cluster_restarts_with_its_committed_rows(postgres_bindir: Path, postgres: PostgresCluster) -> None:
    with PostgresCluster(bindir=postgres_bindir) as cluster:
        assert cluster.port != postgres.port
        url = cluster.create_database("crash")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE outcomes (id integer)"))
            conn.execute(sa.text("INSERT INTO outcomes SELECT generate_series(1, 100)"))
        engine.dispose()
        pid = cluster.pid
        assert pid is not None

        cluster.kill()
        assert not cluster.running and cluster.pid is None
        assert refuses(cluster.host, cluster.port)
        assert cluster.root is not None and cluster.data_dir.is_dir()

        cluster.start()  # crash recovery from the WAL
        assert cluster.running and cluster.pid not in (None, pid)
        assert scalar(url, "SELECT count(*) FROM outcomes") == 100
        assert "database system was interrupted" in cluster.log_path.read_text()


@pytest.mark.postgres
def test_stop_closes_the_port_and_removes_the_folder(postgres_bindir: Path) -> None:
    cluster = PostgresCluster(bindir=postgres_bindir).start()
    port, root = cluster.port, cluster.root
    assert port is not None and root is not None
    conn = psycopg.connect(cluster.conninfo(), autocommit=True)
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        cluster.stop()  # a client still connected does not hold it up
    finally:
        conn.close()
    assert refuses("127.0.0.1", port)
    assert not root.exists()
    assert not cluster.running and cluster.pid is None
    cluster.stop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        cluster.start()


@pytest.mark.postgres
def test_cluster_of_a_dead_test_process_is_cleaned_up(postgres_bindir: Path) -> None:
    # os._exit skips atexit and finalisers: only the watchdog is left to clean up.
    script = (
        "import os, sys\n"
        "from tests.postgres import PostgresCluster\n"
        f"cluster = PostgresCluster(bindir={str(postgres_bindir)!r}).start()\n"
        "print(cluster.port, cluster.root, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    port_text, root_text = done.stdout.split()
    port, root = int(port_text), Path(root_text)
    deadline = time.monotonic() + 30
    while (root.exists() or not refuses("127.0.0.1", port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refuses("127.0.0.1", port)
    assert not root.exists()


def test_missing_binaries_skip_locally_and_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "find_bindir", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        pg.bindir_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"\.ci/run should have installed .*postgresql"):
        pg.bindir_or_skip()

