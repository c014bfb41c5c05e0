"""``GET /metrics``: Prometheus text exposition, and the middleware that feeds it.

Requests are counted and timed by route template (``/v1/jobs/{job_id}``, never the raw path,
so label cardinality stays bounded; unmatched paths are ``<unmatched>``), method and status.
The middleware is plain ASGI (no ``BaseHTTPMiddleware``, no extra task or thread per request)
and caches its labelled metric children, so a request pays two dict look-ups and two
``perf_counter`` calls. Each process keeps its own counters (``uvicorn --workers N`` → scrape
each process, or run one worker per container).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

router = APIRouter(tags=["operations"])

REQUESTS = Counter(
    "initlab_http_requests_total",
    "HTTP requests by route template, method and status.",
    ("route", "method", "status"),
)
LATENCY = Histogram(
    "initlab_http_request_duration_seconds",
    "Time from request start to the app returning, by route template and method.",
    ("route", "method"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNMATCHED = "<unmatched>"

_counters: dict[tuple[str, str, str], Any] = {}
_histograms: dict[tuple[str, str], Any] = {}


def _record(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, str(status))
    counter = _counters.get(key)
    if counter is None:
        counter = _counters.setdefault(key, REQUESTS.labels(*key))
    counter.inc()
    hkey = (route, method)
    histogram = _histograms.get(hkey)
    if histogram is None:
        histogram = _histograms.setdefault(hkey, LATENCY.labels(*hkey))
    histogram.observe(seconds)


class MetricsMiddleware:
    """Pure ASGI middleware recording every HTTP request in :data:`REQUESTS`/:data:`LATENCY`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # The router stores the matched route in the (shared) scope.
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            _record(path, scope["method"], status, time.perf_counter() - start)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def read_metrics() -> Response:
    """Prometheus metrics of this process (text exposition format)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
