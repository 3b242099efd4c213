"""A small typed client of the scoring service, for campaign tools and notebooks.

Example
-------
>>> from nextbest.serving.client import NextbestClient
>>> with NextbestClient("http://127.0.0.1:3000", token="...") as nb:  # doctest: +SKIP
...     decision = nb.rank(1042, top_k=3)
...     nb.feedback(decision.decision_id, "click")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from nextbest.decisioning.documents import RankResponse
from nextbest.errors import BadInputError, NextbestError, NotFoundError
from nextbest.serving.schemas import FeedbackReceipt, RefreshReport


class ServiceError(NextbestError):
    """The service answered with an error; ``status`` is the HTTP status code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class NextbestClient:
    """Client of ``nextbest serve``.

    Parameters
    ----------
    url
        Base URL of the service, e.g. ``http://127.0.0.1:3000``.
    token
        Bearer token when the service runs with ``NEXTBEST_API_TOKEN``.
    timeout
        Seconds before a request is abandoned.
    transport
        Optional ``httpx`` transport (e.g. for retries or a proxy).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:3000",
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> NextbestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    # ------------------------------------------------------------------ endpoints
    def rank(
        self,
        customer_id: int,
        *,
        context: Mapping[str, Any] | None = None,
        top_k: int | None = None,
        explain: bool = False,
    ) -> RankResponse:
        """Rank the next best actions of one customer (``POST /rank``).

        ``context`` may hold ``channel``, ``event`` and ``timestamp``; ``explain``
        adds the suppressed candidates and why they were dropped.
        """
        body = _rank_body(customer_id, context, top_k)
        data = self._post("/rank", body, params={"explain": "true"} if explain else None)
        return RankResponse.model_validate(data)

    def rank_batch(
        self,
        customer_ids: Iterable[int],
        *,
        context: Mapping[str, Any] | None = None,
        top_k: int | None = None,
        chunk_size: int = 5000,
        seed: int | None = None,
    ) -> list[RankResponse]:
        """Rank many customers (``POST /rank_batch``), ``chunk_size`` per request.

        ``seed`` fixes the exploration draw (the same seed, time and customers give
        the same decisions as the decision engine in process).
        """
        ids = [int(c) for c in customer_ids]
        out: list[RankResponse] = []
        for start in range(0, len(ids), chunk_size):
            body: dict[str, Any] = {"customer_ids": ids[start : start + chunk_size]}
            if context:
                body["context"] = _jsonable(dict(context))
            if top_k is not None:
                body["top_k"] = top_k
            if seed is not None:
                body["seed"] = seed
            data = self._post("/rank_batch", body)
            out.extend(RankResponse.model_validate(d) for d in data["decisions"])
        return out

    def feedback(
        self,
        decision_id: str,
        outcome: str,
        *,
        revenue: float | None = None,
        timestamp: dt.datetime | None = None,
    ) -> FeedbackReceipt:
        """Report an outcome of a decision (``POST /feedback``); safe to repeat."""
        body: dict[str, Any] = {
            "decision_id": decision_id,
            "outcome": outcome,
            "timestamp": (timestamp or dt.datetime.now(dt.timezone.utc)).isoformat(),
        }
        if revenue is not None:
            body["revenue"] = revenue
        return FeedbackReceipt.model_validate(self._post("/feedback", body))

    def refresh(self) -> RefreshReport:
        """Make the service load the current champion and challenger (``POST /admin/refresh``)."""
        return RefreshReport.model_validate(self._post("/admin/refresh", {}))

    def ready(self) -> bool:
        """Whether the service has its models and features loaded (``GET /readyz``)."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    # ------------------------------------------------------------------ plumbing
    def _post(self, path: str, body: Mapping[str, Any], params: Mapping[str, str] | None = None) -> Any:
        response = self._http.post(path, json=body, params=params)
        if response.status_code >= 400:
            raise _error(response)
        return response.json()


def _rank_body(customer_id: int, context: Mapping[str, Any] | None, top_k: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": int(customer_id)}
    if context:
        body["context"] = _jsonable(dict(context))
    if top_k is not None:
        body["top_k"] = top_k
    return body


def _jsonable(context: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime | dt.date) else v) for k, v in context.items()}


def _error(response: httpx.Response) -> NextbestError:
    try:
        payload = response.json()
        message = payload.get("error") or payload.get("detail") or response.text
    except ValueError:
        message = response.text
    text = f"{response.request.method} {response.request.url.path} -> {response.status_code}: {message}"
    if response.status_code == 404:
        return NotFoundError(text)
    if response.status_code in (400, 422):
        return BadInputError(text)
    return ServiceError(text, response.status_code)
