"""Tasks in spawned worker processes: results in order, progress in the parent, the first error raised."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nextbest.simulation.processes import DayCallback, run_tasks


def _days(n: int, on_day: DayCallback | None) -> int:
    for day in range(1, n + 1):
        if on_day is not None:
            on_day(f"task-{n}", day, n)
    return n * n


def _fails_on_two(n: int, on_day: DayCallback | None) -> int:
    if n == 2:
        raise ValueError("task 2 failed")
    return n


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_come_in_task_order_and_every_day_is_reported(jobs: int) -> None:
    seen: list[tuple[str, int, int]] = []
    assert run_tasks(_days, [3, 1, 2], jobs, lambda *day: seen.append(day)) == [9, 1, 4]
    assert sorted(seen) == sorted((f"task-{n}", d, n) for n in (3, 1, 2) for d in range(1, n + 1))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_task_raises_its_own_error(jobs: int) -> None:
    with pytest.raises(ValueError, match="task 2 failed"):
        run_tasks(_fails_on_two, [1, 2, 3], jobs)


def _fails_at_once_or_runs_long(task: tuple[int, str], on_day: DayCallback | None) -> int:
    n, marker = task
    if n == 1:
        # Fail once the long task runs: a worker stopped before it took its task has nothing to clean up.
        for _ in range(1200):  # two minutes at most, bounded
            if Path(marker).exists():
                break
            time.sleep(0.1)
        raise ValueError("task 1 failed")
    ended = "ran to its end"
    try:
        Path(marker).write_text("started")
        for _ in range(1200):  # two minutes at most, bounded
            time.sleep(0.1)
    except SystemExit:
        ended = "stopped"
        raise
    finally:
        Path(marker).write_text(ended)
    return n


def test_a_failure_stops_the_other_workers_through_their_cleanup(tmp_path: Path) -> None:
    marker = tmp_path / "long-task"
    with pytest.raises(ValueError, match="task 1 failed"):
        run_tasks(_fails_at_once_or_runs_long, [(2, str(marker)), (1, str(marker))], jobs=2)
    # The long task was stopped, not awaited, and its finally block ran.
    assert marker.read_text() == "stopped"
