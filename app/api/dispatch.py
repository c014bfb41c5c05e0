"""Routes that answer without FastAPI's per-request machinery.

:class:`RawRoute` is an ``APIRoute`` whose endpoint takes the ``Request`` and returns a
``Response`` itself; :class:`DirectRoutes` calls such endpoints for their exact path and
method without walking the router. For a 3×3 tensor, matching the request against every
route and FastAPI's handling around the endpoint cost more than generating the tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class RawRoute(APIRoute):
    """A route whose endpoint takes the ``Request`` and returns a ``Response`` itself.

    FastAPI still documents it (``openapi_extra``) and its exception handlers still render
    errors, but the endpoint is called directly: no dependency solving, body reading or
    response validation per request.
    """

    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint
        return endpoint


class DirectRoutes:
    """Pure ASGI, in front of the application's router (inside its exception handling):
    a request whose path and method are exactly those of one of ``routes`` (each a
    :class:`RawRoute` without path parameters) goes straight to that route's endpoint, with
    ``scope["route"]`` and ``scope["endpoint"]`` set as the router sets them. Everything else
    — other paths and methods, ``HEAD``, a ``root_path``, requests that FastAPI's telemetry
    traces (``fastapi.telemetry`` in the scope) — goes to the router unchanged."""

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.routes: dict[tuple[str, str], RawRoute] = {}
        for route in routes:
            if not isinstance(route, RawRoute) or route.param_convertors:
                raise ValueError(f"{route!r} is not a RawRoute without path parameters")
            for method in route.methods or ():
                if method != "HEAD":
                    self.routes.setdefault((route.path, method), route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if (
            scope["type"] == "http"
            and not scope.get("root_path")
            and "fastapi.telemetry" not in scope
        ):
            route = self.routes.get((scope["path"], scope["method"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        endpoint: Endpoint = route.endpoint
        scope["route"], scope["endpoint"], scope["path_params"] = route, endpoint, {}
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)
