"""Micro-batching of concurrent calls."""

from __future__ import annotations

import asyncio
import time

import pytest

from nextbest.serving.batching import MicroBatcher


def test_concurrent_calls_share_batches_and_keep_their_results() -> None:
    seen: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        seen.append(items)
        time.sleep(0.02)  # while one batch runs, the next queues up
        return [2 * i for i in items]

    async def main() -> list[int]:
        batcher = MicroBatcher(double, max_batch=8)
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(30)))
        finally:
            await batcher.aclose()

    assert asyncio.run(main()) == [2 * i for i in range(30)]
    assert max(len(b) for b in seen) > 1
    assert all(len(b) <= 8 for b in seen)


def test_max_wait_gathers_calls_arriving_close_together() -> None:
    seen: list[list[int]] = []

    def echo(items: list[int]) -> list[int]:
        seen.append(items)
        return items

    async def main() -> None:
        batcher = MicroBatcher(echo, max_batch=64, max_wait_s=0.2)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.02)
        await asyncio.gather(first, batcher.submit(2))
        await batcher.aclose()

    asyncio.run(main())
    assert seen == [[1, 2]]


def test_an_exception_result_fails_only_its_own_call() -> None:
    def check(items: list[int]) -> list[object]:
        return [ValueError(f"bad {i}") if i < 0 else i for i in items]

    async def main() -> list[object]:
        batcher = MicroBatcher(check)
        try:
            return await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
        finally:
            await batcher.aclose()

    ok, failed = asyncio.run(main())
    assert ok == 1
    assert isinstance(failed, ValueError) and str(failed) == "bad -1"


def test_a_failing_function_fails_every_call_of_the_batch() -> None:
    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("engine down")

    async def main() -> None:
        batcher = MicroBatcher(broken)
        try:
            with pytest.raises(RuntimeError, match="engine down"):
                await batcher.submit(1)
        finally:
            await batcher.aclose()

    asyncio.run(main())


def test_inline_runs_on_the_loop_and_falls_back_to_a_thread_when_it_would_wait() -> None:
    import threading

    loop_thread: list[int] = []
    where: list[tuple[str, int]] = []

    def in_thread(items: list[int]) -> list[int]:
        where.append(("thread", threading.get_ident()))
        return [-i for i in items]

    def inline(items: list[int]) -> list[int] | None:
        if any(i % 2 for i in items):  # odd items "would wait"
            return None
        where.append(("inline", threading.get_ident()))
        return [-i for i in items]

    async def main() -> list[int]:
        loop_thread.append(threading.get_ident())
        batcher = MicroBatcher(in_thread, inline=inline)
        try:
            return [await batcher.submit(2), await batcher.submit(3)]
        finally:
            await batcher.aclose()

    assert asyncio.run(main()) == [-2, -3]
    assert where[0] == ("inline", loop_thread[0])
    assert where[1][0] == "thread" and where[1][1] != loop_thread[0]


def test_a_lone_call_is_ranked_in_its_own_task_and_concurrent_ones_still_batch() -> None:
    seen: list[tuple[str, list[int]]] = []

    def in_thread(items: list[int]) -> list[int]:
        seen.append(("thread", items))
        time.sleep(0.05)  # while it runs, the other calls queue up
        return items

    def inline(items: list[int]) -> list[object] | None:
        if 0 in items:  # 0 "would wait": it goes to the thread
            return None
        seen.append(("inline", items))
        return [i if i >= 0 else ValueError(f"bad {i}") for i in items]

    async def main() -> tuple[list[object], object]:
        batcher = MicroBatcher(in_thread, inline=inline)
        try:
            first = asyncio.ensure_future(batcher.submit(0))
            await asyncio.sleep(0.01)  # 0 is in its thread now
            together = await asyncio.gather(first, *(batcher.submit(i) for i in range(1, 5)))
            consumer = batcher._consumer
            # Nothing queued, nothing running: no queue hop, and an exception result is raised.
            alone = await asyncio.gather(batcher.submit(-7), return_exceptions=True)
            assert batcher._consumer is consumer
            return together, alone[0]
        finally:
            await batcher.aclose()

    together, alone = asyncio.run(main())
    assert together == [0, 1, 2, 3, 4]
    assert seen[:2] == [("thread", [0]), ("inline", [1, 2, 3, 4])]  # the others waited, then batched
    assert seen[2] == ("inline", [-7]) and isinstance(alone, ValueError)


def test_calls_ready_in_one_turn_of_the_loop_are_ranked_together_on_it() -> None:
    """An idle batcher still gathers: requests read in the same turn share one inline call."""
    inline_calls: list[list[int]] = []

    def inline(items: list[int]) -> list[int]:
        inline_calls.append(items)
        return [i + 1 for i in items]

    def in_thread(items: list[int]) -> list[int]:
        raise AssertionError("nothing had to wait: the batch is ranked on the loop")

    async def main() -> list[int]:
        batcher = MicroBatcher(in_thread, inline=inline)
        try:
            first = await batcher.submit(0)  # alone: ranked at the next turn, by itself
            rest = await asyncio.gather(*(batcher.submit(i) for i in range(1, 6)))
            return [first, *rest]
        finally:
            await batcher.aclose()

    assert asyncio.run(main()) == [1, 2, 3, 4, 5, 6]
    assert inline_calls == [[0], [1, 2, 3, 4, 5]]
