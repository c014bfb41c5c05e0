"""The ASGI application: ``app.main:app``, built by :func:`create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp

from app.api.body_limit import BodyLimitProblemMiddleware
from app.api.compression import CompressionMiddleware
from app.api.cors import RouteCORS
from app.api.dispatch import DirectRoutes
from app.api.errors import install_error_handlers
from app.api.head import HeadAsGet
from app.api.openapi import problem_openapi
from app.api.ratelimit import RateLimit, group_limits
from app.api.request_size import RequestSizeLimit
from app.config import Settings, get_settings

EXPOSED_HEADERS = [
    "X-Tensor-Shape",
    "X-Tensor-Dtype",
    "X-Seed",
    "X-Initializer",
    "X-Fan-In",
    "X-Fan-Out",
    "ETag",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Idempotent-Replayed",
]


class InitlabAPI(FastAPI):
    """FastAPI with the body limit's own 413 rendered as problem+json (``app.api.body_limit``):
    that response is sent from outside every middleware and handler, so only a wrapper
    around the whole stack sees it."""

    def build_middleware_stack(self) -> ASGIApp:
        return BodyLimitProblemMiddleware(super().build_middleware_stack())


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Load the compiled initializer kernels before serving (off the event loop), so the first
    tensor request does not pay for it."""
    from app.initializers import warm_up

    await anyio.to_thread.run_sync(warm_up)
    yield


def create_app(settings: Settings | None = None, *, direct_routes: bool = True) -> FastAPI:
    """Build the FastAPI application with its routers, middleware and error handlers.

    ``direct_routes=False`` leaves every request to FastAPI's router (the tests compare the
    two paths)."""
    from app.api.routes import DIRECT_ROUTES, ROUTERS
    from app.api.routes.metrics import MetricsMiddleware

    settings = settings or get_settings()
    app = InitlabAPI(
        title="initlab",
        version="0.1.0",
        summary="Initialized weight tensors and training-comparison jobs.",
        # Every request body, counted while it arrives (413 problem+json from app.api.errors);
        # the dataset upload route lifts it and streams against max_upload_bytes instead.
        max_body_size=settings.max_body_bytes,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # Middleware, innermost first (each add_middleware wraps the ones before it).
    app.add_middleware(CompressionMiddleware)  # gzip policy: app/api/compression.py
    if group_limits(settings):  # not installed at all while every limit is off
        app.add_middleware(RateLimit, settings=settings)
    app.add_middleware(
        RequestSizeLimit,
        max_query_bytes=settings.max_query_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    app.add_middleware(  # outside the limits, so their refusals carry the CORS headers too
        RouteCORS,
        routes=app.routes,  # a preflight gets what the routes serve on its path, HEAD included
        allow_origins=settings.cors_origins,
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
    )
    app.add_middleware(HeadAsGet)  # HEAD goes down as GET: app/api/head.py
    app.add_middleware(MetricsMiddleware)  # outermost: times everything, pure ASGI
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    if direct_routes:
        # Inside the middleware and exception handling, in front of the router's own stack.
        app.router.middleware_stack = DirectRoutes(app.router.middleware_stack, DIRECT_ROUTES)
    return app


app = create_app()
