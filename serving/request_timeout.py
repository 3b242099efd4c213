"""BentoML's per-request timeout, without holding every request in memory for the whole timeout.

BentoML's ``TimeoutMiddleware`` (1.4) arms ``loop.call_later(timeout, ...)`` for each
request and never cancels it. The timer keeps the request's ``contextvars``
context — its OpenTelemetry span, futures, locks — alive for the full timeout
(``traffic.timeout``, 120 s here). At a thousand requests a second that is over a
hundred thousand live objects, and every full garbage collection walks them:
the worker stalled for 100-270 ms about once a second, on ``/noop`` as much as
on ``/rank``. The timeout cannot be switched off (BentoML requires a positive
value), so :func:`install` gives the middleware a ``__call__`` that behaves the
same (504 when no response has started within the timeout) and cancels its
timer as soon as the response starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def call_with_timeout(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """``TimeoutMiddleware.__call__`` whose timer lives only until the response starts.

    ``self`` is the middleware (``self.app``, ``self.timeout``).
    """
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()

    def expire() -> None:
        if not started.done():
            started.set_exception(asyncio.TimeoutError())

    timer = loop.call_later(self.timeout, expire)

    async def _send(message: Message) -> None:
        if not started.done():
            started.set_result(None)
        await send(message)

    task = asyncio.ensure_future(self.app(scope, receive, _send))
    # An app that ends without sending anything must not wait out the timeout.
    task.add_done_callback(lambda _: started.done() or started.set_result(None))
    try:
        await started
    except asyncio.TimeoutError:
        if task.cancel():
            body = {"error": f"Not able to process the request in {self.timeout} seconds"}
            await JSONResponse(body, status_code=504)(scope, receive, send)
            return
    finally:
        timer.cancel()
    await task


def install() -> bool:
    """Give BentoML's ``TimeoutMiddleware`` :func:`call_with_timeout`; True once installed.

    Only the implementation this module was written against is replaced (it is
    recognised by its ``_set_timer_out`` helper); another BentoML version keeps its own.
    """
    from bentoml._internal.server.http import traffic

    middleware = traffic.TimeoutMiddleware
    if middleware.__call__ is call_with_timeout:
        return True
    if not hasattr(middleware, "_set_timer_out"):
        return False
    middleware.__call__ = call_with_timeout  # type: ignore[method-assign]
    return True
