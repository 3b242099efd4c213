"""Prometheus metrics of the scoring service, served by BentoML's ``/metrics``.

BentoML workers run in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), so the
metric objects are created on first use inside the worker, never at import.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

# Sub-millisecond to a few seconds: /rank sits at the low end, /rank_batch at the top.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


@dataclass(frozen=True)
class ServiceMetrics:
    """The service's metric families."""

    latency: Histogram
    decisions: Counter
    fallbacks: Counter
    feedback: Counter
    refreshes: Counter
    reason_codes: Counter
    plans: Counter


@functools.cache
def service_metrics() -> ServiceMetrics:
    """The process-wide metrics (created once per worker)."""
    return ServiceMetrics(
        latency=Histogram(
            "nextbest_request_latency_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
        ),
        decisions=Counter("nextbest_decisions", "Decisions made, by experiment arm.", ["arm"]),
        fallbacks=Counter(
            "nextbest_fallbacks",
            "Rankings made without a profile (cold start: unknown customer, non-personal channels only).",
            ["reason"],
        ),
        feedback=Counter("nextbest_feedback", "Feedback received, by outcome and whether it was new.", ["outcome", "new"]),
        refreshes=Counter("nextbest_model_refreshes", "Model swaps, by result.", ["result"]),
        reason_codes=Counter(
            "nextbest_reason_codes",
            "Model reason codes of returned actions, by source: the customer's plan, the per-state memo or computed (TreeSHAP).",
            ["source"],
        ),
        plans=Counter(
            "nextbest_plans",
            "Customer plans /rank decided from, by source: cached, or built (on loading a state or a first request).",
            ["source"],
        ),
    )
