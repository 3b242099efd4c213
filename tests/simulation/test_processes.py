"""Tasks in spawned worker processes: results in order, progress in the parent, the first error raised."""

from __future__ import annotations

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
