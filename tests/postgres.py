"""Throwaway PostgreSQL clusters for the tests.

The live store runs on PostgreSQL at scale, so its tests need a real server. This
module starts one from the tests themselves -- never a system service: it finds
the server binaries, runs ``initdb`` into a fresh temporary folder, starts the
server with ``pg_ctl`` on a free loopback port, and at the end stops it and
removes the folder. Nothing outside that folder is touched, so concurrent test
runs (xdist workers, a colleague's run on the same machine) cannot disturb each
other.

Only the standard library is imported at module level: the module doubles as the
clean-up watchdog's script (``python tests/postgres.py --watchdog ...``), which
should start fast. psycopg and pytest are imported where they are used.

Examples
--------
>>> with PostgresCluster() as cluster:                     # doctest: +SKIP
...     engine = sqlalchemy.create_engine(cluster.create_database("orders"))
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

#: The binaries a cluster needs; a folder holding all three is a server installation.
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
#: The database superuser ``initdb`` creates. Authentication is ``trust``: no password.
SUPERUSER = "postgres"
#: The database :attr:`PostgresCluster.url` names, created when the cluster starts.
DEFAULT_DATABASE = "nextbest"
#: The OS account the server runs as when the tests run as root (see :class:`PostgresCluster`).
UNPRIVILEGED_USER = "nobody"
#: Loopback only: with trust authentication the server must never be reachable from outside.
HOST = "127.0.0.1"
#: Names :meth:`PostgresCluster.create_database` accepts: they go into URLs and SQL unquoted.
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: The longest unix socket path the kernel accepts (``sun_path`` is 108 bytes with the NUL).
_MAX_SOCKET_PATH = 107
_START_ATTEMPTS = 8


def find_bindir() -> Path | None:
    """The folder of the PostgreSQL server binaries, or None when none is installed.

    Candidates, first match wins: ``pg_config --bindir``; the folder ``initdb`` on
    ``PATH`` resolves to; Debian's ``/usr/lib/postgresql/<major>/bin``, newest first.
    Each must hold ``initdb``, ``pg_ctl`` and ``postgres``: Debian's ``pg_config``
    comes with ``libpq-dev`` and names a bindir even when no server is installed.

    Returns
    -------
    pathlib.Path or None
        The folder, or None when no candidate holds all three binaries.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            candidates.append(Path(done.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        # Resolved: /usr/local/bin/initdb may be a symlink into the real installation.
        candidates.append(Path(initdb).resolve().parent)
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(debian, key=lambda p: int(p.parent.name), reverse=True)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in SERVER_BINARIES):
            return folder
    return None


def bindir_or_skip() -> Path:
    """:func:`find_bindir`, or end the calling test when there are no binaries.

    Skips the test on a developer machine, but fails it in CI (``CI=true``): there
    ``.ci/run`` installs the server, so missing binaries are a broken CI set-up that
    a skip would hide.

    Returns
    -------
    pathlib.Path
        The folder of ``initdb``, ``pg_ctl`` and ``postgres``.
    """
    import pytest

    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if os.environ.get("CI") == "true":
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; "
            ".ci/run should have installed the Debian package `postgresql`",
            pytrace=False,
        )
    pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")


def cluster_pids(data_dir: Path | str) -> list[int]:
    """The live processes of the cluster whose data folder is ``data_dir``.

    Every PostgreSQL process (postmaster, backends, background workers) runs with
    the data folder as its working directory, so ``/proc/<pid>/cwd`` identifies a
    cluster's processes without trusting ``postmaster.pid``. A zombie has no working
    directory and is not listed: a killed postmaster can stay a zombie for a while
    when the container's PID 1 reaps orphans lazily, yet it is dead. Linux only.

    Parameters
    ----------
    data_dir : pathlib.Path or str
        The cluster's data folder.

    Returns
    -------
    list of int
        Process ids, in no particular order; empty when the cluster is not running.
    """
    target = os.path.realpath(data_dir)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") == target:
                pids.append(int(entry))
        except OSError:  # gone meanwhile, a zombie, or another user's process (when not root)
            continue
    return pids


def _kill_all(data_dir: Path | str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
    """Send ``sig`` to every process of the cluster and wait until none is left."""
    deadline = time.monotonic() + timeout
    while pids := cluster_pids(data_dir):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL processes {pids} of {data_dir} survived signal {sig}")
        time.sleep(0.05)


def _ephemeral_ports() -> range:
    """The kernel's range for ports picked by ``bind(port=0)`` and outgoing connections."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def _pick_port() -> int:
    """A port that is free on 127.0.0.1 now, chosen at random outside the ephemeral range.

    Outside the ephemeral range, because other tests take their ports with
    ``bind(port=0)`` (which hands out ephemeral ports, see ``tests/serving``) and
    release them before their server binds: a postmaster taking such a port in
    between would break that test. At random, because clusters of other xdist
    workers and other test runs pick concurrently; the rare collision that remains
    (two picks of the same free port) makes ``pg_ctl start`` fail, and
    :meth:`PostgresCluster.start` then retries on another port.
    """
    ephemeral = _ephemeral_ports()
    if ephemeral.start - 10000 >= 1000:
        pool = range(10000, ephemeral.start)
    elif 65535 - ephemeral.stop >= 1000:
        pool = range(ephemeral.stop, 65536)
    else:
        pool = range(1024, 65536)
    rng = random.SystemRandom()  # not the `random` module's state: tests seed that one
    for _ in range(200):
        port = rng.choice(pool)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # No SO_REUSEADDR: a port with a listener (on any address) or a connection
            # in TIME_WAIT counts as taken.
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on {HOST} in {pool}")


def _traversable(path: Path, uid: int, gid: int) -> bool:
    """Whether the account ``uid``/``gid`` may enter ``path`` and all its parents.

    By the owner, group and other execute bits only (no ACLs, no supplementary
    groups): a conservative answer, which at worst moves the cluster to ``/tmp``.
    """
    for folder in (path, *path.parents):
        st = folder.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _conf_string(value: object) -> str:
    """``value`` quoted for postgresql.conf."""
    return "'" + str(value).replace("'", "''") + "'"


#: Clusters started and not yet stopped, stopped at interpreter exit (see :meth:`PostgresCluster.start`).
_RUNNING: set[PostgresCluster] = set()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_RUNNING):
        cluster.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a temporary folder, on a loopback port.

    ``start()`` (or entering the ``with`` block) runs ``initdb`` and starts the
    server; ``stop()`` (or leaving the block) shuts it down and removes the folder.
    The server listens on 127.0.0.1 only, keeps its unix socket inside the folder,
    trusts every local connection, and runs with ``fsync=on`` so that durability
    tests see real commits.

    Three safety nets stop a cluster its owner forgot: ``stop()`` in the fixture's
    finaliser, an ``atexit`` handler, and a watchdog process that waits on a pipe
    from this process and kills the cluster and removes its folder when the pipe
    closes -- however this process ends, even by SIGKILL or ``os._exit`` (which skip
    ``atexit``).

    ``initdb`` and ``postgres`` refuse to run as root. When the tests run as root,
    every server binary runs as the unprivileged account ``os_user`` (default
    ``nobody``), which owns the temporary folder. ``nobody`` because it exists on
    every Debian system (base-passwd, uid 65534) and needs no change to the machine:
    a dedicated system user would need ``useradd`` -- which concurrent xdist workers
    would race on for /etc/passwd's lock -- and Debian's ``postgres`` account exists
    only where the ``postgresql`` package is installed. The switch is
    ``subprocess``'s ``user``/``group``/``extra_groups`` (setgroups, setgid, setuid in
    the child before exec, as ``setpriv`` does): unlike ``runuser`` or ``su`` it opens
    no PAM session, which minimal containers may lack or log noisily, and needs no
    shell quoting.

    Parameters
    ----------
    bindir : pathlib.Path, optional
        Folder of ``initdb``, ``pg_ctl`` and ``postgres``; default :func:`find_bindir`.
    base_dir : pathlib.Path, optional
        Where the temporary folder is created; default the system's temporary folder,
        or ``/tmp`` when that is not traversable by ``os_user`` or too deep for a
        unix socket path.
    os_user : str
        The account the server runs as when this process is root; ignored otherwise.

    Attributes
    ----------
    bindir : pathlib.Path
        The server binaries used.
    host : str
        ``127.0.0.1``.
    port : int or None
        The TCP port, once started.
    user : str
        The database superuser in URLs (:data:`SUPERUSER`).
    database : str
        The database :attr:`url` names (:data:`DEFAULT_DATABASE`).
    root : pathlib.Path or None
        The temporary folder (data folder, socket folder, server log), once started.

    Raises
    ------
    FileNotFoundError
        No ``bindir`` given and :func:`find_bindir` finds none.
    """

    def __init__(self, *, bindir: Path | None = None, base_dir: Path | None = None, os_user: str = UNPRIVILEGED_USER) -> None:
        found = bindir if bindir is not None else find_bindir()
        if found is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")
        self.bindir = Path(found)
        self.host = HOST
        self.port: int | None = None
        self.user = SUPERUSER
        self.database = DEFAULT_DATABASE
        self.root: Path | None = None
        self._base_dir = base_dir
        self._account = pwd.getpwnam(os_user) if os.geteuid() == 0 else None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._removed = False

    # -- paths -------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The data folder (``PGDATA``)."""
        return self._require_root() / "data"

    @property
    def socket_dir(self) -> Path:
        """The folder of the server's unix socket (never ``/var/run/postgresql``)."""
        return self._require_root() / "socket"

    @property
    def log_path(self) -> Path:
        """The server log (``pg_ctl -l``)."""
        return self._require_root() / "server.log"

    # -- addresses ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default database, ``postgresql+psycopg://postgres@127.0.0.1:PORT/nextbest``."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` on this cluster."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self._require_port()}/{database}"

    def conninfo(self, database: str | None = None) -> str:
        """libpq connection string of ``database`` (default :attr:`database`), for psycopg directly."""
        return f"host={self.host} port={self._require_port()} user={self.user} dbname={database or self.database}"

    # -- state -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The postmaster's process id, or None when the server is not running."""
        if self.root is None or self._removed:
            return None
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if pid in cluster_pids(self.data_dir) else None

    @property
    def running(self) -> bool:
        """Whether any process of the cluster is alive."""
        return self.root is not None and not self._removed and bool(cluster_pids(self.data_dir))

    # -- life cycle --------------------------------------------------------------

    def start(self) -> PostgresCluster:
        """Create (first call) and start the cluster; again after :meth:`kill`, restart it.

        The first call runs ``initdb``, writes the settings, starts the server on a
        free port (retrying on another port when a concurrent picker took it) and
        creates :attr:`database`. A later call on a killed cluster starts the server
        again on the same folder and port, so PostgreSQL runs its crash recovery.
        A no-op when the server is running.

        Returns
        -------
        PostgresCluster
            ``self``, for ``cluster = PostgresCluster().start()``.

        Raises
        ------
        RuntimeError
            ``initdb`` or ``pg_ctl start`` failed (the message holds its output or the
            server log's tail), or the cluster was stopped (a stopped cluster's folder
            is gone: start a new one).
        """
        if self._removed:
            raise RuntimeError("this cluster was stopped and its folder removed; start a new PostgresCluster")
        if self.root is None:
            try:
                self._create()
                self._start_on_free_port()
                self.execute(f"CREATE DATABASE {self.database}")
            except BaseException:
                self.stop()  # `with` calls no __exit__ when __enter__ raises: clean up here
                raise
        elif not self.running:
            # A crash leaves postmaster.pid and the socket's lock file behind; postgres
            # refuses to start while the pid in them exists, and a killed postmaster may
            # linger as an unreaped zombie. No process of this cluster is alive (checked
            # above), so both are stale.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            (self.socket_dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
            if not self._pg_ctl_start():
                raise RuntimeError(f"PostgreSQL did not restart on port {self.port}:\n{self._log_tail()}")
        return self

    def stop(self) -> None:
        """Shut the server down and remove the folder. Idempotent; never raises on a dead server.

        ``pg_ctl stop -m fast`` (rolls back open transactions, disconnects clients,
        writes a checkpoint); if that fails, ``-m immediate``; if that fails too,
        SIGKILL to every process of the cluster. Afterwards the port is closed and
        :attr:`root` no longer exists.
        """
        if self.root is None or self._removed:
            return
        try:
            if self.running:
                for mode in ("fast", "immediate"):
                    done = self._run(["pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "-s"])
                    if done.returncode == 0:
                        break
            _kill_all(self.data_dir)  # whatever survived (nothing, normally)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self._removed = True
            _RUNNING.discard(self)
            self._release_watchdog()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Crash the server: ``sig`` to every process of the cluster, as a power cut would.

        The folder stays; :meth:`start` then restarts the server, which recovers from
        its write-ahead log. With SIGKILL nothing is flushed or cleaned up by the
        server, so committed data survives only because ``fsync=on`` and the WAL did
        their job. (The OS page cache survives a SIGKILL, unlike a real power cut.)

        Parameters
        ----------
        sig : int
            The signal; default SIGKILL.
        """
        if not self.running:
            return
        _kill_all(self.data_dir, sig)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._removed else "running" if self.running else "not running"
        return f"<PostgresCluster {self.host}:{self.port} {state} at {self.root}>"

    # -- databases ---------------------------------------------------------------

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL.

        Parameters
        ----------
        name : str, optional
            Lower-case letters, digits and underscores, not starting with a digit, at
            most 63 characters (PostgreSQL's limit); default a fresh ``db_<n>``.

        Returns
        -------
        str
            ``postgresql+psycopg://postgres@127.0.0.1:PORT/<name>``.

        Raises
        ------
        ValueError
            ``name`` is not such a name.
        psycopg.errors.DuplicateDatabase
            The database exists.
        """
        name = name if name is not None else f"db_{next(self._names)}"
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 characters")
        self.execute(f"CREATE DATABASE {name}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting its sessions first (``WITH (FORCE)``)."""
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 characters")
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit mode (as ``CREATE DATABASE`` needs); returns its rows."""
        import psycopg

        with psycopg.connect(self.conninfo(database), autocommit=True, connect_timeout=30) as conn:
            cur = conn.execute(sql)  # type: ignore[arg-type]  # the tests' own SQL, no user input
            return cur.fetchall() if cur.description is not None else []

    # -- internals ---------------------------------------------------------------

    def _require_root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster has not been started")
        return self.root

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("the cluster has not been started")
        return self.port

    def _pick_base_dir(self) -> Path:
        """The folder to create the temporary folder in (see ``base_dir``)."""
        if self._base_dir is not None:
            return Path(self._base_dir)
        # The socket path, <base>/nextbest-pg-XXXXXXXX/socket/.s.PGSQL.NNNNN, must fit sun_path.
        fits = len(tempfile.gettempdir()) + 50 <= _MAX_SOCKET_PATH
        default = Path(tempfile.gettempdir())
        if fits and (self._account is None or _traversable(default, self._account.pw_uid, self._account.pw_gid)):
            return default
        # E.g. TMPDIR under /root (mode 0700), which `nobody` cannot enter.
        return Path("/tmp")

    def _create(self) -> None:
        """Make the folder, arm the watchdog, run ``initdb``."""
        base = self._pick_base_dir()
        if self._account is not None and not _traversable(base, self._account.pw_uid, self._account.pw_gid):
            raise RuntimeError(f"{base} is not traversable by {self._account.pw_name}; pass another base_dir")
        root = Path(tempfile.mkdtemp(prefix="nextbest-pg-", dir=base))
        self.root = root
        _RUNNING.add(self)
        self._arm_watchdog()
        if self._account is not None:
            # The server's own folder: `nobody` must create the data folder and socket in it.
            os.chown(root, self._account.pw_uid, self._account.pw_gid)
        socket_dir = self.socket_dir
        socket_dir.mkdir(mode=0o700)
        self._chown(socket_dir)
        if len(str(socket_dir)) + len("/.s.PGSQL.65535") > _MAX_SOCKET_PATH:
            raise RuntimeError(f"{socket_dir} is too long for a unix socket path; pass a shorter base_dir")
        done = self._run(
            [
                "initdb", "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
                "--encoding=UTF8", "--locale=C",
                # Skips only initdb's final flush of the new files to disk (about a second):
                # a crash of the machine during the tests loses the cluster anyway. The
                # running server has fsync=on (see _write_settings).
                "--no-sync",
            ],
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        # Our settings in their own file, rewritten per start attempt; later lines win.
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# Settings of the throwaway test cluster (tests/postgres.py)\ninclude 'nextbest_test.conf'\n")

    def _write_settings(self) -> None:
        """Write ``nextbest_test.conf`` for the current port."""
        settings = {
            # Loopback only: trust authentication must not be reachable from the network.
            "listen_addresses": _conf_string(self.host),
            "port": str(self.port),
            # Inside our folder: no clash with a system cluster's /var/run/postgresql, and
            # no need for write access there as `nobody`.
            "unix_socket_directories": _conf_string(self.socket_dir),
            # The durability tests rely on commits being flushed: state the defaults explicitly.
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            # Crash recovery first flushes the whole data folder: one syncfs() instead of an
            # fsync() per file (~1500 files, seconds on a busy disk; initdb ran --no-sync).
            # Just as durable. Linux only, like the rest of this module.
            "recovery_init_sync_method": "syncfs",
            # Small and fast: a test cluster holds little data, and the machine is shared.
            "shared_buffers": "'16MB'",
            # No LLVM start-up cost on small test queries.
            "jit": "off",
            # Deterministic session time zone, whatever the machine's.
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.data_dir / "nextbest_test.conf"
        path.write_text(text)
        self._chown(path)

    def _start_on_free_port(self) -> None:
        """Start the server, retrying on another port when the picked one was taken meanwhile."""
        for _ in range(_START_ATTEMPTS):
            self.port = _pick_port()
            self._write_settings()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            if self._pg_ctl_start():
                return
            log = self._log_tail(offset)
            if "Address already in use" not in log:
                raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{log}")
        raise RuntimeError(f"PostgreSQL found no free port in {_START_ATTEMPTS} attempts:\n{self._log_tail()}")

    def _pg_ctl_start(self) -> bool:
        """``pg_ctl -w start``; True once the server accepts connections."""
        done = self._run(
            ["pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "60", "-s"],
            timeout=120,
        )
        if done.returncode == 0:
            return True
        _kill_all(self.data_dir)  # a half-started server: not left behind
        return False

    def _log_tail(self, offset: int = 0, chars: int = 3000) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                log.seek(offset)
                return log.read()[-chars:]
        except OSError:
            return "(no server log)"

    def _chown(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as ``os_user`` when we are root."""
        account: dict[str, Any] = {}
        if self._account is not None:
            account = {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}
        # A clean environment: PG* variables (PGDATA, PGPORT, PGOPTIONS ...) of the
        # caller must not change the cluster; the C locale keeps messages in English.
        env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            # Our folder as working directory: as `nobody`, the caller's may not be readable.
            cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout, **account,
        )

    def _arm_watchdog(self) -> None:
        """Start the process that cleans up if this one dies without calling :meth:`stop`."""
        root = self._require_root()
        self._watchdog = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--watchdog", str(root), str(root / "data")],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C to the test run's process group must not stop it first.
            start_new_session=True,
        )

    def _release_watchdog(self) -> None:
        """Close the pipe after a regular stop: the watchdog finds nothing left and exits."""
        if self._watchdog is None:
            return
        assert self._watchdog.stdin is not None
        self._watchdog.stdin.close()
        try:
            self._watchdog.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._watchdog.kill()
            self._watchdog.wait()
        self._watchdog = None


def _watchdog(root: str, data_dir: str) -> None:
    """Wait for EOF on stdin, then kill the cluster in ``data_dir`` and remove ``root``.

    The write end of the pipe belongs to the test process only (``subprocess``
    pipes are not inherited by its other children), so EOF means that process
    released it or ended -- whichever way, including SIGKILL.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()
    try:
        _kill_all(data_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == ["--watchdog"]:
    _watchdog(sys.argv[2], sys.argv[3])
