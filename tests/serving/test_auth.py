"""The bearer-token middleware on a real Starlette app."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from nextbest.serving.auth import BearerTokenMiddleware

TOKEN = "s3cret-token-value"


async def ok(_: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


def app(token: str | None) -> TestClient:
    inner = Starlette(routes=[Route("/rank", ok, methods=["POST"]), Route("/readyz", ok), Route("/livez", ok)])
    return TestClient(BearerTokenMiddleware(inner, token))


@pytest.mark.parametrize(
    ("header", "status", "message"),
    [
        (None, 401, "missing bearer token"),
        ("Bearer wrong", 401, "invalid bearer token"),
        (f"bearer {TOKEN}", 401, "invalid bearer token"),
        (TOKEN, 401, "invalid bearer token"),
        (f"Bearer {TOKEN}", 200, None),
    ],
)
def test_token_is_required_when_set(header: str | None, status: int, message: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = app(TOKEN).post("/rank", headers=headers)
    assert response.status_code == status
    if message:
        assert message in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/readyz", "/livez"])
def test_probes_stay_open(path: str) -> None:
    assert app(TOKEN).get(path).status_code == 200


def test_no_token_configured_means_open() -> None:
    assert app(None).post("/rank").status_code == 200
