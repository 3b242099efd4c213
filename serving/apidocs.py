"""The service's own API page (``GET /``) and OpenAPI document (``GET /docs.json``).

BentoML 1.4 answers ``/`` with its generic page (title "BentoML Prediction
Service", a Google Tag Manager script a visitor's browser fetches from a third
party, BentoML's community links) and ``/docs.json`` with the bento's README as
the description and version "None". Both routes are added here to the FastAPI
app mounted at ``/``: BentoML mounts that app ahead of its own index and spec
routes, and its mount answers every path the app has a route for, so these win.

The page is Swagger UI from the files BentoML ships and serves itself at
``/static_content/``: every script comes from this server. The OpenAPI document
is BentoML's (its probes, the mounted app's routes and schemas, any
``@bentoml.api``) with nextbest's title, version, description and, when a token
is required, the bearer scheme.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from nextbest import __version__
from nextbest.serving.auth import OPEN_PATHS
from nextbest.serving.settings import TOKEN_ENV

TITLE = "nextbest"

#: The decision contract in a few lines: the page's text and the spec's description (Markdown).
DESCRIPTION = f"""\
Next-best-action decisions over HTTP.

**Decide.** `POST /rank` with a `customer_id` (and optionally a context: channel, event,
timestamp) returns the decision document: the ranked actions, each an offer on a channel with
its probability of response, uplift, value, cost and expected value, the reason codes, and the
propensity with which it was chosen. `POST /rank_batch` does the same for many customers.
Customers the warehouse does not know get a cold-start ranking (`cold_start: true`) on
non-personal channels only.

**Learn.** Every decision is logged under its `decision_id`. Send what happened to it
(`open`, `click`, `conversion` with its revenue, `complaint`, `unsubscribe`) to
`POST /feedback`: the model learns from it and the A/B report measures with it.

**Auth.** When the server runs with `{TOKEN_ENV}` set, every request needs the header
`Authorization: Bearer <token>`, except the probes `{"`, `".join(sorted(OPEN_PATHS))}`.

Errors are JSON `{{"error": ...}}`: 422 names the invalid field, 401 a missing or wrong token,
503 asks to retry.
"""


def openapi_document(spec: dict[str, Any], *, auth: bool) -> dict[str, Any]:
    """BentoML's generated ``spec`` as nextbest's: title, version, description, security."""
    document = dict(spec)
    document["info"] = {"title": TITLE, "version": __version__, "description": DESCRIPTION}
    if auth:
        components = dict(document.get("components") or {})
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["components"] = components
        document["security"] = [{"bearer": []}]
        paths = document.get("paths") or {}
        for path, item in paths.items():
            for operation in item.values():
                if not isinstance(operation, dict):
                    continue
                if path in OPEN_PATHS:
                    operation["security"] = []
                else:
                    # Every other route answers 401 without the token, BentoML's own included.
                    responses = operation.setdefault("responses", {})
                    responses.setdefault("401", {"description": "Missing or wrong bearer token."})
    return document


def page(*, auth: bool) -> str:
    """The HTML of ``GET /``: the description, then Swagger UI on ``./docs.json``."""
    state = (
        f"This server requires a bearer token (<code>{TOKEN_ENV}</code> is set): use <em>Authorize</em> below."
        if auth else f"This server runs without authentication (<code>{TOKEN_ENV}</code> is not set)."
    )
    paragraphs = "\n".join(f"<p>{_inline(p)}</p>" for p in DESCRIPTION.strip().split("\n\n"))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{TITLE} {__version__} — decision API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="./static_content/swagger-ui.css">
<style>
  body {{ margin: 0; font-family: system-ui, sans-serif; color: #1f2328; }}
  header {{ max-width: 1400px; margin: 0 auto; padding: 24px 20px 0; }}
  header h1 {{ margin: 0 0 4px; font-size: 28px; }}
  header .version {{ color: #57606a; font-weight: normal; font-size: 18px; }}
  header p {{ max-width: 60em; line-height: 1.5; margin: 8px 0; }}
  code {{ background: #f3f4f6; padding: 0 3px; border-radius: 3px; }}
  #swagger-ui .information-container {{ display: none; }}
</style>
</head>
<body>
<header>
<h1>{TITLE} <span class="version">{__version__}</span></h1>
{paragraphs}
<p>{state} The OpenAPI document is at <a href="./docs.json">/docs.json</a>.</p>
</header>
<div id="swagger-ui"></div>
<script src="./static_content/swagger-ui-bundle.js"></script>
<script>
window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "./docs.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
    validatorUrl: null
  }});
}};
</script>
</body>
</html>
"""


def _inline(markdown: str) -> str:
    """The little Markdown the description uses (**bold**, `code`), as HTML."""
    text = html.escape(" ".join(markdown.split()), quote=False)
    parts = text.split("`")
    for i in range(1, len(parts), 2):
        parts[i] = f"<code>{parts[i]}</code>"
    text = "".join(parts)
    bold = text.split("**")
    for i in range(1, len(bold), 2):
        bold[i] = f"<strong>{bold[i]}</strong>"
    return "".join(bold)


def add_routes(api: FastAPI, generated_spec: Any, *, auth: bool) -> None:
    """Serve the page at ``/`` (``/docs`` redirects there) and the document at ``/docs.json``.

    ``generated_spec`` is called once, on the first request: BentoML's spec of the
    whole service (``Service.openapi_spec``), built when every route exists.
    """

    @lru_cache(maxsize=1)
    def document() -> bytes:
        return json.dumps(openapi_document(generated_spec().asdict(), auth=auth)).encode()

    @api.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page(auth=auth))

    @api.get("/docs", include_in_schema=False)
    async def docs() -> RedirectResponse:
        return RedirectResponse("./")

    @api.get("/docs.json", include_in_schema=False)
    async def spec() -> Response:
        return Response(document(), media_type="application/json")
