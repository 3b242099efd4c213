"""The BentoML scoring service.

Routes
------
``POST /rank``            next best actions of one customer (micro-batched)
``POST /rank_batch``      many customers in one call (ranked in bounded chunks)
``POST /feedback``        an outcome of a decision; 202 once durably stored
``POST /admin/refresh``   load the current champion/challenger and swap atomically
``GET  /reports/latest``  newest HTML report of the workspace
``POST /noop``            BentoML endpoint doing nothing, the benchmark's baseline
                          (only with ``NEXTBEST_BENCHMARK_NOOP=true``)
``GET  /`` ``/docs.json``  the API page and OpenAPI document (:mod:`.apidocs`)
``GET  /livez /healthz /readyz /metrics``  BentoML's probes (``/healthz`` = ``/livez``), Prometheus

The ranking routes are a FastAPI app mounted on the BentoML service: FastAPI
gives the 422 answers that name the offending field and documents every field in
the OpenAPI spec BentoML serves at ``/docs.json``. Everything stateful lives in
:class:`~nextbest.serving.runtime.Runtime`; this module only maps HTTP to it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import bentoml
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nextbest.decisioning.documents import RankRequest, RankResponse
from nextbest.errors import BadInputError, NotFoundError
from nextbest.logfile import route_library_output
from nextbest.serving import apidocs
from nextbest.serving.auth import BearerTokenMiddleware
from nextbest.serving.batching import MicroBatcher
from nextbest.live.store import NEGATIVE_OUTCOMES, StoreUnavailableError
from nextbest.serving.connections import WarehouseBusyError
from nextbest.serving.metrics import service_metrics
from nextbest.serving.reports import latest_report
from nextbest.serving.request_timeout import install as install_request_timeout
from nextbest.serving.runtime import RERANKS, ContactConflictError, Runtime
from nextbest.serving.schemas import (
    ErrorBody,
    FeedbackBody,
    FeedbackReceipt,
    RankBatchBody,
    RankBatchResult,
    RankBody,
    RefreshReport,
)
from nextbest.serving.settings import TOKEN_ENV, ServeSettings
from nextbest.serving.validation import InvalidFieldError, RequestChecks

log = logging.getLogger(__name__)
T = TypeVar("T")

# Before BentoML builds the app: its timeout middleware would keep each request alive for 120 s.
install_request_timeout()

api = FastAPI(
    title="nextbest",
    summary="Next-best-action decisions over HTTP.",
    version="1",
    description=(
        "Rank offers × channels for a customer, log every decision, and take feedback. "
        f"When the server runs with {TOKEN_ENV} set, send 'Authorization: Bearer <token>'."
    ),
    # FastAPI's own pages load Swagger UI and ReDoc from a CDN; ``/`` and ``/docs.json`` are apidocs'.
    docs_url=None, redoc_url=None, openapi_url=None,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token (when auth is on)."},
    422: {"model": ErrorBody, "description": "Invalid request: `error` names the field."},
    503: {"model": ErrorBody, "description": "Live store unavailable or service not ready; retry after `Retry-After` seconds."},
}


def _error(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


@api.exception_handler(RequestValidationError)
async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _error(422, summary, errors)


@api.exception_handler(InvalidFieldError)
async def _invalid_field(_: Request | None, exc: InvalidFieldError) -> JSONResponse:
    """A value the server's own checks reject (time window, channel): the format of :func:`_invalid`."""
    return _error(422, str(exc), [{"field": exc.field, "message": exc.message, "type": "value_error"}])


@api.exception_handler(HTTPException)
async def _http(_: Request, exc: HTTPException) -> Response:
    """Starlette's and FastAPI's own errors (unknown path, wrong method, unparseable body) as :class:`ErrorBody`."""
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer to a body json.loads rejects other than for its syntax (those are 422 already):
        # not UTF-8, a number of more than 4300 digits, nesting deeper than the parser's recursion limit.
        message = "not parseable as JSON (invalid UTF-8, a number of more than 4300 digits, or nested too deeply)"
        return _error(422, f"body: {message}; send a JSON object", [{"field": "body", "message": message, "type": "json_invalid"}])
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    response = _error(exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


@api.exception_handler(NotFoundError)
async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
    return _error(404, str(exc))


@api.exception_handler(BadInputError)
async def _bad_input(_: Request, exc: BadInputError) -> JSONResponse:
    return _error(422, str(exc))


@api.exception_handler(WarehouseBusyError)
@api.exception_handler(StoreUnavailableError)
async def _busy(_: Request, exc: Exception) -> JSONResponse:
    response = _error(503, str(exc))
    response.headers["Retry-After"] = "1"
    return response


@api.exception_handler(Exception)
async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error", exc_info=exc)
    return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _json(document: RankResponse | RankBatchResult) -> Response:
    """Serialise in pydantic's core; an absent ``suppressed`` list is left out, not sent as null."""
    if isinstance(document, RankBatchResult):
        body = document.model_dump_json(exclude={"decisions": {"__all__": {"suppressed"}}})
    else:
        body = document.model_dump_json(exclude={"suppressed"} if document.suppressed is None else None)
    return Response(body, media_type="application/json")


async def _timed(endpoint: str, call: Callable[[], Awaitable[T]]) -> T:
    started = time.perf_counter()
    try:
        return await call()
    finally:
        service_metrics().latency.labels(endpoint).observe(time.perf_counter() - started)


async def _error_response(exc: Exception) -> Response:
    """The answer the API's exception handlers give for ``exc`` (most specific class first)."""
    for cls in type(exc).__mro__:
        handler = api.exception_handlers.get(cls)
        if handler is not None:
            return await handler(None, exc)  # type: ignore[no-any-return,arg-type]
    raise exc


class DirectRank:
    """ASGI middleware of the API: a well-formed ``POST /rank`` goes straight to the micro-batcher.

    FastAPI's routing, dependency resolution and request objects cost about as
    much as a planned decision. A request with a JSON body that validates as
    :class:`RankBody` and no query string skips them: the same model validates
    it and the same functions rank and serialise. Any other request, malformed
    ones included, goes to the FastAPI route with its body replayed, so every
    error keeps its one format and the route stays the one in the OpenAPI spec.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]
            or get_route_path(scope) != "/rank" or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            body = RankBody.model_validate_json(raw)
        except ValidationError:
            await self.app(scope, _replay(raw, receive), send)
            return
        started = time.perf_counter()
        try:
            service: NextbestService = bentoml.get_current_service()
            service.checks.rank(body)
            response = _json(await _decide(service, body.to_request(explain=False)))
        except Exception as exc:  # noqa: BLE001 - answered as the route's exception handlers answer
            response = await _error_response(exc)
        finally:
            service_metrics().latency.labels("rank").observe(time.perf_counter() - started)
        await response(scope, receive, send)


async def _decide(service: NextbestService, request: RankRequest) -> RankResponse:
    """Rank ``request`` and answer once its decision is committed to the live store.

    A decision the contact gate refused (another worker took the customer's
    contact meanwhile) is ranked again, with that contact known.
    """
    for _ in range(RERANKS + 1):
        doc = await service.batcher.submit(request)
        ticket = service.runtime.ticket(doc)
        if ticket is None:
            return doc
        written = await asyncio.wrap_future(ticket)
        if doc.decision_id not in written.rejected:
            return doc
    raise ContactConflictError(1)


def _media_type(scope: Scope) -> bytes:
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    return content_type.split(b";")[0].strip().lower()


def _is_json(scope: Scope) -> bool:
    return _media_type(scope) == b"application/json"


class NoMultipart:
    """ASGI middleware of the service: a multipart body to one of BentoML's own endpoints is 400.

    Those endpoints (``/noop``) take JSON only, yet BentoML parses a multipart body
    as a form and answers a malformed one (no boundary) with a 500. Such a
    request is refused before BentoML sees it.
    """

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths and _media_type(scope).startswith(b"multipart/"):
            message = f"{scope['path']} takes a JSON body; send it with 'Content-Type: application/json'"
            await _error(400, f"body: {message}", [{"field": "body", "message": message, "type": "content_type"}])(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``raw`` as the whole body, then hands over to the server's ``receive``."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replayed


@bentoml.service(
    name="nextbest",
    workers=1,
    traffic={"timeout": 120},
    # /rank_batch and /feedback run in threads; /rank is funnelled through one micro-batcher
    # (ranked on the event loop when nothing would make it wait).
    threads=4,
)
@bentoml.asgi_app(api, path="/")
class NextbestService:
    """Next-best-action scoring service over a nextbest workspace."""

    def __init__(self) -> None:
        self.settings = ServeSettings.from_env()
        # Libraries' messages (MLflow loading the models, ...) to the workspace's log file;
        # the root logger stays BentoML's server log.
        route_library_output(self.settings.workspace.root, root_logger=False)
        # Raises (and so stops the worker) when no champion is registered.
        self.runtime = Runtime(self.settings)
        # What pydantic cannot check: timestamps against the clock, channels against the configuration.
        self.checks = RequestChecks(self.settings.time_window, self._channel_ids)
        self.batcher: MicroBatcher[Any, Any] = MicroBatcher(
            self.runtime.rank_requests,
            max_batch=self.settings.microbatch_max,
            max_wait_s=self.settings.microbatch_ms / 1000,
            inline=self.runtime.rank_now if self.settings.rank_inline else None,
        )
        service_metrics()  # register the families so /metrics lists them from the start
        self._install_sighup()

    def _channel_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.runtime.state.config.channels.channels)

    def _install_sighup(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self._refresh_in_background()))

    async def _refresh_in_background(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.runtime.refresh)
        except Exception:
            log.exception("SIGHUP refresh failed; still serving the previous models")

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        """Flush queued decisions so a graceful stop loses none."""
        await self.batcher.aclose()
        await anyio.to_thread.run_sync(self.runtime.close)

    # ------------------------------------------------------------------ baseline
    if ServeSettings.from_env().benchmark_noop:  # the class is built once per process, at import

        @bentoml.api(route="/noop")
        def noop(self, customer_id: int = 0) -> dict[str, int]:
            """Does nothing: the benchmark's baseline for the cost of the HTTP stack."""
            return {"customer_id": customer_id}


# The routes are module functions with an async dependency rather than methods of the
# service: BentoML gives a method's ``self`` a synchronous dependency, which FastAPI
# resolves in a worker thread, one thread hop per request.
async def current_service() -> NextbestService:
    """The worker's service instance."""
    return bentoml.get_current_service()  # type: ignore[no-any-return]


Service = Annotated["NextbestService", Depends(current_service)]


# ------------------------------------------------------------------ ranking
@api.post("/rank", response_model=RankResponse, responses=_ERRORS, tags=["decisions"])
async def rank(
    service: Service,
    body: RankBody,
    explain: Annotated[bool, Query(description="Include the suppressed candidates and why.")] = False,
) -> Response:
    """Rank the next best actions of one customer and log the decision.

    Unknown customers get a cold-start ranking (``cold_start: true``): no
    profile, non-personal channels only, since no consent is known.
    """
    service.checks.rank(body)
    request = body.to_request(explain=explain)

    async def run() -> Response:
        return _json(await _decide(service, request))

    return await _timed("rank", run)


@api.post("/rank_batch", response_model=RankBatchResult, responses=_ERRORS, tags=["decisions"])
async def rank_batch(service: Service, body: RankBatchBody) -> Response:
    """Rank many customers in one call (chunked, so memory stays bounded) and log every decision."""
    if len(body.customer_ids) > service.settings.rank_batch_max:
        raise InvalidFieldError(
            "body.customer_ids",
            f"{len(body.customer_ids)} entries; send at most {service.settings.rank_batch_max} per call "
            "(NEXTBEST_RANK_BATCH_MAX), in several calls",
        )
    service.checks.rank(body)

    async def run() -> Response:
        decisions = await anyio.to_thread.run_sync(service.runtime.rank_batch, body)
        return _json(
            RankBatchResult(count=len(decisions), cold_start=sum(d.cold_start for d in decisions), decisions=decisions)
        )

    return await _timed("rank_batch", run)


# ------------------------------------------------------------------ feedback
@api.post(
    "/feedback",
    status_code=202,
    response_model=FeedbackReceipt,
    responses={404: {"model": ErrorBody, "description": "Unknown decision_id."}, **_ERRORS},
    tags=["decisions"],
)
async def feedback(service: Service, body: FeedbackBody) -> FeedbackReceipt:
    """Record an outcome of a decision; stored durably before the 202. Repeats are no-ops."""
    service.checks.feedback(body)

    async def run() -> FeedbackReceipt:
        written = await asyncio.wrap_future(service.runtime.feedback_ticket(body))
        if body.outcome in NEGATIVE_OUTCOMES:
            # Recorded into the contact histories under the engine lock, which a ranking thread may hold.
            return await anyio.to_thread.run_sync(service.runtime.feedback_done, body, written)
        return service.runtime.feedback_done(body, written)

    return await _timed("feedback", run)


# ------------------------------------------------------------------ admin
@api.post("/admin/refresh", response_model=RefreshReport, responses=_ERRORS, tags=["admin"])
async def refresh(service: Service) -> RefreshReport:
    """Load the registry's current champion (and challenger) and swap them in without dropping requests.

    Other workers pick the change up within a second.
    """
    return await anyio.to_thread.run_sync(service.runtime.refresh)


@api.get(
    "/reports/latest",
    response_class=FileResponse,
    responses={404: {"model": ErrorBody, "description": "No report yet."}},
    tags=["reports"],
)
async def latest(service: Service) -> FileResponse:
    """The newest HTML report of the workspace (read-only)."""
    path = latest_report(service.settings.workspace.reports_dir)
    if path is None:
        raise NotFoundError(
            f"no HTML report in {service.settings.workspace.reports_dir}: run `nextbest report` to create one"
        )
    return FileResponse(path, media_type="text/html")


apidocs.add_routes(api, lambda: NextbestService.openapi_spec, auth=bool(ServeSettings.from_env().api_token))
api.add_middleware(DirectRank)
NextbestService.add_asgi_middleware(BearerTokenMiddleware, token=ServeSettings.from_env().api_token)
NextbestService.add_asgi_middleware(NoMultipart, paths=frozenset({"/noop"}))  # BentoML's endpoints

__all__ = ["NextbestService", "api"]
