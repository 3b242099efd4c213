"""Optional bearer-token authentication for every route but the probes.

A pure ASGI middleware (no request object is built) so the check costs next to
nothing on the ``/rank`` hot path. Liveness and readiness probes stay open:
orchestrators call them without credentials.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths reachable without a token.
OPEN_PATHS: frozenset[str] = frozenset({"/livez", "/healthz", "/readyz"})


class BearerTokenMiddleware:
    """Reject HTTP requests lacking ``Authorization: Bearer <token>`` with 401.

    Parameters
    ----------
    app
        The wrapped ASGI application.
    token
        The expected token; ``None`` or empty disables the check.
    open_paths
        Paths served without a token.
    """

    def __init__(self, app: ASGIApp, token: str | None, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        # Constant-time comparison: response timing must not leak the token.
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        reason = "missing" if not given else "invalid"
        body = json.dumps(
            {"error": f"{reason} bearer token: send the header 'Authorization: Bearer <NEXTBEST_API_TOKEN>'"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="nextbest"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
