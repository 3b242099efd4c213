"""The page at ``/`` and the OpenAPI document are nextbest's own; ``/noop`` only on request."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from nextbest import __version__
from tests.serving.conftest import Server

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("server")]

#: Builds the service's real Starlette app in-process (BentoML's own factory) and prints what it serves.
_BUILT_APP = """
import json
from starlette.testclient import TestClient
from _bentoml_impl.server.app import ServiceAppFactory
from nextbest.serving.service import NextbestService

NextbestService.inject_config()
client = TestClient(ServiceAppFactory(NextbestService, is_main=True)())
print(json.dumps({"apis": sorted(NextbestService.apis), "paths": sorted(client.get("/docs.json").json()["paths"])}))
"""


def test_the_page_at_root_is_nextbests_and_loads_nothing_from_elsewhere(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert f"<title>nextbest {__version__}" in text
    assert "/rank" in text and "/feedback" in text
    assert "Authorization: Bearer" in text
    for boilerplate in ("BentoML Prediction Service", "googletagmanager", "created with BentoML", "github.com/bentoml"):
        assert boilerplate not in text
    # Every script and stylesheet comes from this server, and is there.
    assets = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert not urlparse(asset).netloc and not asset.startswith("//"), asset
        assert api.get(urljoin("/", asset)).status_code == 200, asset
    assert not re.search(r'<script[^>]*src="(https?:)?//', text)
    assert api.get("/docs", follow_redirects=True).text == text


def test_the_openapi_document_is_nextbests_and_has_no_noop(api: httpx.Client) -> None:
    spec = api.get("/docs.json").json()
    assert spec["info"]["title"] == "nextbest"
    assert spec["info"]["version"] == __version__
    assert "/feedback" in spec["info"]["description"] and "Bearer" in spec["info"]["description"]
    assert "BentoML" not in json.dumps(spec["info"])
    assert "/noop" not in spec["paths"]
    assert {"/rank", "/feedback", "/healthz", "/livez", "/readyz"} <= set(spec["paths"])
    # This server requires a token: the document says so, and that the probes need none.
    assert spec["security"] == [{"bearer": []}]
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert api.post("/noop", json={"customer_id": 1}).status_code == 404


def test_healthz_is_the_open_liveness_probe(server: Server) -> None:
    with server.client(token="") as client:
        assert client.get("/healthz").status_code == 200


def test_libraries_draw_no_progress_bars_in_the_server_log(server: Server) -> None:
    log = server.log()
    assert "Downloading artifacts" not in log and "it/s]" not in log


def test_the_benchmark_setting_adds_noop() -> None:
    """The service class is built at import: the setting is read in a fresh interpreter."""
    env = {**os.environ, "NEXTBEST_BENCHMARK_NOOP": "true"}
    env.pop("NEXTBEST_API_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", _BUILT_APP], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert built["apis"] == ["noop"]
    assert "/noop" in built["paths"]
