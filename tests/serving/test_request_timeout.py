"""BentoML's request timeout, installed by the service: same answers, no timer left behind."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from nextbest.serving.request_timeout import call_with_timeout, install


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]


async def _call(app: Any, timeout: float) -> tuple[list[dict[str, Any]], int]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = TimeoutMiddleware(app, timeout=timeout)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await call_with_timeout(middleware, scope, receive, send)
    return sent, _live_timers(asyncio.get_running_loop())


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_finished_request_leaves_no_timer() -> None:
    async def main() -> tuple[list[dict[str, Any]], int]:
        results = [await _call(_ok, timeout=120) for _ in range(50)]
        return results[-1]

    sent, live = asyncio.run(main())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert live == 0  # BentoML's own keeps one per request for the whole timeout


def test_a_slow_request_gets_504() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    sent, _ = asyncio.run(_call(slow, timeout=0.05))
    assert sent[0]["status"] == 504
    assert "0.05 seconds" in json.loads(sent[1]["body"])["error"]


def test_an_app_that_sends_nothing_does_not_wait_out_the_timeout() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _call(silent, timeout=30)
        return loop.time() - started

    assert asyncio.run(main()) < 1.0


def test_install_replaces_the_middleware_call() -> None:
    assert install()
    assert TimeoutMiddleware.__call__ is call_with_timeout
