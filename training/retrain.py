"""``nextbest retrain``: the scheduled learning step of a served workspace (and of the simulator).

One run, meant for a scheduler (cron, a workflow engine):

1. sync the live store into the warehouse (``nextbest data sync``), so the log
   holds every decision and outcome the services recorded;
2. build the feature snapshot as of today (midnight after the latest event, or
   ``--as-of``) if the warehouse lacks it, as ``nextbest features build`` would;
3. train a challenger on the whole log (``nextbest train``);
4. promote it only through the gate (``nextbest promote``,
   :mod:`nextbest.training.promotion`);
5. announce the change to running services: every worker of ``nextbest serve``
   on the workspace watches ``artifacts/serving/refresh.stamp`` and reloads the
   champion and the latest snapshot within a second of its change (the same as
   ``POST /admin/refresh`` or ``SIGHUP``), without dropping a request.

A lock file (``artifacts/retrain.lock``, an exclusive ``flock`` the kernel
releases if the process dies) keeps two runs from training at once: the second
stops at once with :class:`RetrainBusyError` (exit code 75, "try again later").
The simulator's ``--retrain-every`` calls :func:`retrain` too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from nextbest.errors import BadInputError, NextbestError
from nextbest.live.store import LiveStore
from nextbest.workspace import Workspace

#: The lock file under the workspace's ``artifacts/``.
LOCK_FILE = Path("retrain.lock")


class RetrainBusyError(NextbestError):
    """Another retraining holds the workspace's lock; nothing was done. Exit code 75 (EX_TEMPFAIL)."""

    exit_code = 75


@dataclass(frozen=True)
class RetrainOptions:
    """What a retraining does.

    Attributes
    ----------
    tune_trials
        Optuna trials before the final fit (0 = the configured parameters).
    as_of
        Snapshot time of "today" (a midnight); ``None`` = midnight after the warehouse's latest event.
    snapshot
        Build that snapshot if missing (the simulator builds its own each day: ``False``).
    announce
        Touch the services' refresh stamp when the champion or the snapshot changed.
    run_name
        MLflow run name (default ``retrain-<as-of or now>``).
    """

    tune_trials: int = 0
    as_of: pd.Timestamp | None = None
    snapshot: bool = True
    announce: bool = True
    run_name: str | None = None

    def check(self) -> RetrainOptions:
        """Validated copy.

        Raises
        ------
        BadInputError
            Naming the option and the accepted values.
        """
        if self.tune_trials < 0:
            raise BadInputError(f"--tune must be 0 or a number of trials, got {self.tune_trials}")
        if self.as_of is not None and pd.Timestamp(self.as_of) != pd.Timestamp(self.as_of).normalize():
            raise BadInputError(f"--as-of {self.as_of}: give a date (a snapshot is taken at midnight), e.g. 2024-06-03")
        return self


@dataclass(frozen=True)
class RetrainReport:
    """What one retraining did; :meth:`line` is the command's one-line summary."""

    synced: int
    snapshot: str | None
    snapshot_built: bool
    version: str | None
    training_rows: int
    promoted: bool
    reason: str
    champion: str | None
    announced: bool
    seconds: float

    def line(self) -> str:
        """One line for a scheduler's log."""
        snap = "" if self.snapshot is None else f"snapshot {self.snapshot} {'built' if self.snapshot_built else 'present'}; "
        verdict = "promoted" if self.promoted else "kept champion"
        return (
            f"retrain: synced {self.synced:,} live rows; {snap}trained {self.version} on {self.training_rows:,} decisions; "
            f"{verdict} (champion {self.champion}): {self.reason}"
            f"{'; services told to refresh' if self.announced else ''} ({self.seconds:.0f} s)"
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@contextlib.contextmanager
def retrain_lock(ws: Workspace) -> Iterator[None]:
    """Hold the workspace's retraining lock, or raise :class:`RetrainBusyError` at once."""
    path = ws.artifacts_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RetrainBusyError(
                f"another retraining is running on {ws.root} ({holder}); this one did nothing. "
                "Let it finish, or schedule runs further apart"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def announce_refresh(ws: Workspace) -> Path:
    """Touch the refresh stamp every worker of a running ``nextbest serve`` on ``ws`` watches."""
    from nextbest.serving.runtime import REFRESH_STAMP

    stamp = ws.artifacts_dir / REFRESH_STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    return stamp


def retrain(
    ws: Workspace,
    options: RetrainOptions = RetrainOptions(),
    *,
    store: LiveStore | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetrainReport:
    """Sync, snapshot, train a challenger and promote it only through the gate (see the module docstring).

    Parameters
    ----------
    ws
        The workspace (a served one, or a simulator's replica).
    options
        What to do (validated here).
    store
        The live store to sync from; default the workspace's.
    progress
        Called with progress messages.

    Raises
    ------
    RetrainBusyError
        Another retraining holds the lock.
    NotFoundError
        No decisions to learn from.
    """
    from nextbest.live.sync import sync
    from nextbest.models.registry import CHAMPION, get_version
    from nextbest.training.promotion import promote
    from nextbest.training.trainer import TrainOptions, load_training_set, run_training

    options = options.check()
    began = time.perf_counter()
    with retrain_lock(ws):
        synced = sync(ws, store).total
        snapshot, built = _ensure_snapshot(ws, options, progress) if options.snapshot else (None, False)
        name = options.run_name or f"retrain-{snapshot or dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        config = ws.config()
        data, version = load_training_set(ws, config, progress)
        result = run_training(
            ws, config, data, TrainOptions(tune_trials=options.tune_trials, run_name=name),
            feature_set_version=version, progress=progress,
        )
        # The gate scores both models on the challenger's test period of this very training set.
        decision = promote(ws, data=data)
        champion = get_version(ws.tracking_uri, CHAMPION)
        announced = options.announce and (decision.promoted or built)
        if announced:
            announce_refresh(ws)
    return RetrainReport(
        synced=synced, snapshot=snapshot, snapshot_built=built,
        version=result.version.label if result.version else None,
        training_rows=int(data.lineage["rows"]),
        promoted=decision.promoted, reason=decision.reason,
        champion=champion.label if champion else None, announced=announced,
        seconds=time.perf_counter() - began,
    )


def _ensure_snapshot(
    ws: Workspace, options: RetrainOptions, progress: Callable[[str], None] | None
) -> tuple[str, bool]:
    """The snapshot date of "today", built if the warehouse lacks it; whether it was built."""
    from nextbest.features.cli import default_as_of
    from nextbest.training.snapshots import build_missing, missing_dates
    from nextbest.warehouse.db import connect

    con = connect(ws.warehouse_path)
    try:
        as_of = pd.Timestamp(options.as_of) if options.as_of is not None else default_as_of(con)
        missing = missing_dates(con, [as_of])
        if missing:
            build_missing(ws, con, ws.config(), missing, progress)
    finally:
        con.close()
    return str(as_of.date()), bool(missing)
