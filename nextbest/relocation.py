"""Relocating a workspace's embedded MLflow store after the folder was copied or moved.

MLflow 3 keeps every local artifact location *absolute* in its SQL store:
``experiments.artifact_location``, ``runs.artifact_uri``,
``logged_models.artifact_location`` and ``model_versions.storage_location`` all
name ``file:///<workspace>/mlartifacts/...``. A relative location given to
``create_experiment`` is resolved against the current directory and stored
absolute (MLflow PR #7670), the default artifact root only applies to
experiments created later, and ``mlflow-artifacts:`` URIs are resolved through
an HTTP tracking server (``mlflow server --serve-artifacts``), which a
``sqlite:///`` tracking URI does not have. MLflow offers no relative or
root-relative location for a file-backed store (mlflow/mlflow#3144 is still
open), so a copied ``mlflow.db`` keeps naming the original's files: the copy
logs new runs into the original's ``mlartifacts/`` and loads its models from
there.

So the store is rewritten when it is opened from another folder. It records
the workspace root it was last opened from in a one-row table,
:data:`ROOT_TABLE`, inside ``mlflow.db``; when the workspace's root differs,
every stored text value that is that old root, or a path or ``file:`` URI
below it, is rewritten to the same path below the new root. The rewrite and
the new record are one SQLite write transaction: ``BEGIN IMMEDIATE`` takes the
database's write lock, so a second process opening the same copy waits, then
re-reads the record under the lock and finds nothing left to do; a crash
leaves the store as it was. The record lives in the database rather than in a
file next to it so that it can never disagree with the paths it describes
(rewriting twice would nest a copy placed inside the original, such as a
simulation replica, a second time). MLflow ignores tables it does not define
(its schema check is a subset test and its migrations name their tables).

Only the embedded store is relocated; a user's own ``MLFLOW_TRACKING_URI``
is left alone (:attr:`nextbest.workspace.Workspace.tracking_uri` decides).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

_log = logging.getLogger(__name__)

#: The table in ``mlflow.db`` recording the workspace root its paths are relative to.
ROOT_TABLE = "nextbest_workspace_root"
#: The workspace's MLflow artifact folder (:attr:`nextbest.workspace.Workspace.mlartifacts_dir`).
MLARTIFACTS = "mlartifacts"
#: How long an opener waits for another process's relocation (or MLflow write) to finish.
LOCK_TIMEOUT_S = 120.0


def recorded_root(db: Path) -> Path | None:
    """The root recorded in ``db``, or ``None`` when the store has no record (or does not exist).

    Parameters
    ----------
    db
        The workspace's ``mlflow.db``.
    """
    if not db.exists():
        return None
    con = _connect(db)
    try:
        return _read_record(con)
    finally:
        con.close()


def relocate_store(root: Path, db: Path) -> bool:
    """Make the MLflow store ``db`` name files under ``root``; returns whether anything was rewritten.

    Parameters
    ----------
    root
        The workspace root the store is opened from.
    db
        Its ``mlflow.db``. Absent or still empty (MLflow creates its schema on
        first use), there is nothing to relocate: whatever MLflow writes then
        is already under ``root``.

    Returns
    -------
    bool
        ``True`` when this call rewrote the stored paths, ``False`` when they
        already pointed here (the usual case, answered by one read without
        taking the write lock).

    Notes
    -----
    A store without a record (created before this existed, or never reopened
    since MLflow created it) is taken to have been made where its experiments'
    artifact folders say: ``<old root>/mlartifacts/<experiment>``. It is only
    relocated from there if this workspace holds those folders, i.e. it was
    copied with its artifacts; a store copied alone (as simulation replicas
    did) keeps reading the original's artifacts, as it did before.
    """
    root = Path(os.path.abspath(root))
    if not db.exists():
        return False
    con = _connect(db)
    try:
        if _read_record(con) == root:
            return False
        try:
            con.execute("BEGIN IMMEDIATE")
            # Under the write lock: another process may have relocated it since the first read.
            recorded = _read_record(con)
            if recorded == root or not _has_table(con, "experiments"):
                con.execute("ROLLBACK")
                return False
            old = recorded if recorded is not None else _inferred_root(con, root)
            moved = old is not None and old != root
            if moved:
                _rewrite(con, old, root)
            con.execute(f'CREATE TABLE IF NOT EXISTS "{ROOT_TABLE}" (root TEXT NOT NULL)')
            con.execute(f'DELETE FROM "{ROOT_TABLE}"')
            con.execute(f'INSERT INTO "{ROOT_TABLE}" (root) VALUES (?)', (str(root),))
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _read_only(exc):
                # A read-only workspace (a mounted snapshot) can still be read: MLflow then
                # reads wherever the store points, as it did before relocation existed.
                _log.warning("cannot relocate the read-only MLflow store %s to %s: %s", db, root, exc)
                return False
            raise
        return moved
    finally:
        con.close()


def _read_only(exc: sqlite3.OperationalError) -> bool:
    return str(getattr(exc, "sqlite_errorname", "")).startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))


def _connect(db: Path) -> sqlite3.Connection:
    """Autocommit, so transactions are the explicit ``BEGIN IMMEDIATE`` ones; waits out other writers."""
    return sqlite3.connect(db, timeout=LOCK_TIMEOUT_S, isolation_level=None)


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _read_record(con: sqlite3.Connection) -> Path | None:
    if not _has_table(con, ROOT_TABLE):
        return None
    row = con.execute(f'SELECT root FROM "{ROOT_TABLE}" LIMIT 1').fetchone()
    return Path(row[0]) if row else None


def _local_path(location: str) -> Path | None:
    """The filesystem path of a plain absolute path or ``file:`` URI; ``None`` for other schemes."""
    if location.startswith("file:"):
        return Path(unquote(urlsplit(location).path))
    if location.startswith("/"):
        return Path(location)
    return None


def _inferred_root(con: sqlite3.Connection, root: Path) -> Path | None:
    """The root a store without a record was made in, if it was copied here with its artifacts."""
    found: set[Path] = set()
    copied = False
    for (location,) in con.execute("SELECT artifact_location FROM experiments WHERE artifact_location IS NOT NULL"):
        path = _local_path(location)
        # Only nextbest's own layout (`ensure_experiment`, the reports' experiments) names a root.
        if path is None or path.parent.name != MLARTIFACTS or path.parent.parent == root:
            continue
        found.add(path.parent.parent)
        copied = copied or (root / MLARTIFACTS / path.name).exists()
    return found.pop() if len(found) == 1 and copied else None


def _forms(root: Path) -> list[str]:
    """How MLflow may spell ``root`` in a stored value: a path and its ``file:`` URIs."""
    plain = str(root)
    forms = [plain, f"file://{plain}", root.as_uri(), f"file:{plain}"]
    return list(dict.fromkeys(forms))


def _rewrite(con: sqlite3.Connection, old: Path, new: Path) -> None:
    """Rewrite every text value at or below ``old`` to the same place below ``new``.

    Every table and column is visited, not a list of MLflow's path columns, so
    a column a later MLflow schema adds is relocated too. Each value is rewritten
    at most once (one ``CASE`` per column), so a new root below the old one
    (a copy inside the original) is not nested twice.
    """
    pairs = list(zip(_forms(old), _forms(new), strict=True))
    tables = [
        name
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith(("sqlite_", "alembic_")) and name != ROOT_TABLE
    ]
    for table in tables:
        columns = [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')]
        for column in columns:
            col = f'"{column}"'
            # A value matches a form when it is the root itself or continues with "/".
            match = f"({col} = ? OR substr({col}, 1, ?) = ?)"
            cases, conditions, case_args, where_args = [], [], [], []
            for before, after in pairs:
                args = [before, len(before) + 1, before + "/"]
                cases.append(f"WHEN {match} THEN ? || substr({col}, ?)")
                case_args += [*args, after, len(before) + 1]
                conditions.append(match)
                where_args += args
            con.execute(
                f'UPDATE "{table}" SET {col} = CASE {" ".join(cases)} ELSE {col} END '
                f"WHERE typeof({col}) = 'text' AND ({' OR '.join(conditions)})",
                [*case_args, *where_args],
            )
