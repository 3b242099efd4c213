"""Simulate policies side by side, one worker process each (``nextbest simulate --jobs N``).

Policies of a simulation are independent: each decides on its own copy of the
world and of the workspace, and the world's draws are keyed by (seed, stream,
day, customer), not by the order of calls. Running them in parallel therefore
changes nothing but the wall time; a 50k-customer, 60-day run that simulated the
champion and then the oracle takes about half as long on two cores.

Workers are spawned, not forked: a fork of a process whose LightGBM (OpenMP)
threads have run can deadlock in the child. A spawned worker routes library
output into the parent's log file (:mod:`nextbest.logfile`) and reports each
simulated day through a queue, so the parent's progress callback sees every
policy's days as they happen.

When a policy fails, the others are stopped rather than awaited (an hour-long
run should not hide its error for an hour): each worker turns SIGTERM into
``SystemExit``, so its ``finally`` blocks run, a served policy's scoring service
is stopped and its live store closed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from nextbest import logfile

Task = TypeVar("Task")
Result = TypeVar("Result")

#: Called after each simulated day with (policy, days done, days in total).
DayCallback = Callable[[str, int, int], None]

#: How often the parent looks for progress while policies run (seconds).
_POLL = 0.2

_progress: Any = None  # the worker's end of the progress queue (set by _start_worker)


def run_tasks(
    fn: Callable[[Task, DayCallback | None], Result], tasks: Sequence[Task], jobs: int,
    on_day: DayCallback | None = None,
) -> list[Result]:
    """``[fn(task, on_day) for task in tasks]``, in up to ``jobs`` worker processes.

    Parameters
    ----------
    fn
        A module-level function (workers import it by name) taking a task and a
        progress callback.
    tasks
        Picklable tasks, in the order the results are returned.
    jobs
        Worker processes; 1 runs every task in this process, one after the other.
    on_day
        Progress callback, called in this process.

    Returns
    -------
    list
        The results, in the order of ``tasks``.

    Raises
    ------
    Exception
        The first task's error; tasks not started yet are cancelled, running ones
        are stopped through their cleanup (SIGTERM, turned into ``SystemExit``).
    """
    if jobs <= 1 or len(tasks) <= 1:
        return [fn(task, on_day) for task in tasks]
    ctx = mp.get_context("spawn")
    progress, workers = ctx.Queue(), ctx.Queue()
    log = logfile.routed_root()
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)), mp_context=ctx, initializer=_start_worker, initargs=(log, progress, workers),
    ) as pool:
        futures = [pool.submit(_run, fn, task) for task in tasks]
        pending: set[Future[Result]] = set(futures)
        finished = 0
        while pending:
            done, pending = wait(pending, timeout=_POLL, return_when=FIRST_EXCEPTION)
            finished += _drain(progress, on_day)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for f in pending:
                    f.cancel()
                _stop(workers)
                raise failed.exception()  # type: ignore[misc]
        # A worker's queue is flushed by a thread of its own: its last days may still be on
        # the way when its result is in. Each task ends its days with a marker; wait for all.
        while finished < len(tasks):
            finished += _drain(progress, on_day, block=True)
        return [f.result() for f in futures]


def _start_worker(log: Path | None, progress: Any, workers: Any) -> None:
    global _progress
    _progress = progress
    signal.signal(signal.SIGTERM, _exit)
    workers.put(os.getpid())
    if log is not None:
        logfile.route_library_output(log)


def _exit(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)


def _stop(workers: Any) -> None:
    """SIGTERM to every worker started so far (those done with their task only exit sooner)."""
    while True:
        try:
            pid = workers.get(timeout=1)
        except queue.Empty:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _run(fn: Callable[[Task, DayCallback | None], Result], task: Task) -> Result:
    try:
        return fn(task, _report)
    finally:
        _progress.put(None)  # the task's last message


def _report(policy: str, done: int, total: int) -> None:
    _progress.put((policy, done, total))


def _drain(progress: Any, on_day: DayCallback | None, *, block: bool = False) -> int:
    """Pass the queued days to ``on_day``; returns the number of tasks that ended meanwhile.

    ``block`` waits (up to a minute: a queue's flush takes milliseconds) for the first message.
    """
    ended = 0
    while True:
        try:
            day = progress.get(timeout=60) if block else progress.get_nowait()
        except queue.Empty:
            if block:
                raise RuntimeError("a worker process ended its task but its progress never arrived") from None
            return ended
        block = False
        if day is None:
            ended += 1
        elif on_day is not None:
            on_day(*day)
