"""Adaptive micro-batching of concurrent ``/rank`` requests.

Ranking is vectorised: one engine call for 32 customers costs little more than
one for a single customer, because the per-call work (building the candidate
frame, one LightGBM ``predict``, arbitration) dominates. A single consumer task
therefore ranks whatever requests queued up while the previous batch ran. Under
light load a request is ranked alone at once (no added latency unless
``max_wait_s`` > 0); under heavy load batches grow by themselves, up to
``max_batch``.

A batch that can be ranked without waiting for anything (no lock held elsewhere,
no warehouse read due) is ranked on the event loop itself: a request then costs
no hand-off to a worker thread and back, which at one connection is a sizeable
part of its latency. Ranking holds the GIL throughout, so a thread would not
have let the loop do much meanwhile anyway.

Every call queues, even one that finds the consumer idle: the consumer wakes
after the callbacks the event loop already has ready, so the requests read in
the same turn of the loop join one batch. Ranking them at once, one by one,
would cost each the per-call work in full; under load that was most of a
request's CPU time. Alone, a call pays one more turn of the loop (microseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio.to_thread

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Gather concurrent calls into batches for a vectorised function.

    Parameters
    ----------
    fn
        Called in a worker thread with a list of items; returns one result per
        item, in order. A result that is an exception fails only its own call;
        an exception raised by ``fn`` fails every call of the batch.
    max_batch
        Most items per call of ``fn``.
    max_wait_s
        How long the consumer waits for more items after the first one arrived
        (0 = only take what is already queued).
    inline
        Tried first, on the event loop: the results of ``fn`` for the items, or
        ``None`` when it would have to wait (for a lock or I/O); ``fn`` then runs in
        a worker thread. Must not block.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.0,
        inline: Callable[[list[T]], Sequence[R] | None] | None = None,
    ) -> None:
        self.fn = fn
        self.inline = inline
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._busy = False  # the consumer holds a batch (ranking it, or waiting for its thread)

    async def submit(self, item: T) -> R:
        """Rank ``item`` with whatever else is queued; returns its result."""
        if self._queue is None:
            # Created lazily: the queue must belong to the server's running loop.
            self._queue = asyncio.Queue()
            self._consumer = asyncio.get_running_loop().create_task(self._consume(), name="nextbest-microbatch")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def aclose(self) -> None:
        """Stop the consumer task (queued calls are cancelled)."""
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
            self._consumer = None

    async def _consume(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            if self.max_wait_s > 0:
                deadline = asyncio.get_running_loop().time() + self.max_wait_s
                while len(batch) < self.max_batch:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(queue.get(), remaining))
                    except TimeoutError:
                        break
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            items = [item for item, _ in live]
            self._busy = True
            try:
                results = self.inline(items) if self.inline is not None else None
                if results is None:
                    results = await anyio.to_thread.run_sync(self.fn, items)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            finally:
                self._busy = False
            for (_, fut), result in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
