"""CORS whose preflight answers for the path it asks about.

Starlette's ``CORSMiddleware`` advertises one list of methods for every path. Here a preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) gets the methods the routes serve on its
own path, ``HEAD`` wherever ``GET`` is (:func:`app.api.errors.allowed_methods`, the list a
405's ``Allow`` gives), and a preflight for any other method is refused as Starlette refuses a
method it was not configured with (400 ``Disallowed CORS method``). A path no route serves
gets every method the app serves, so the request goes through to its 404 problem. Everything
else is Starlette's: origins, headers, exposed headers, the simple responses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import allowed_methods


class RouteCORS:
    """Pure ASGI: ``CORSMiddleware(app, **options)`` with ``allow_methods`` per path, taken
    from ``routes`` (the application's, read at each preflight). One ``CORSMiddleware`` per
    distinct method list (a handful), made on first use."""

    def __init__(self, app: ASGIApp, /, *, routes: Sequence[BaseRoute], **options: Any) -> None:
        self.app, self.routes, self.options = app, routes, options
        self.simple = CORSMiddleware(app, **options)  # non-preflight requests: no methods used
        self.preflights: dict[tuple[str, ...], CORSMiddleware] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.simple(scope, receive, send)
            return
        # A path no route serves gets every method: the request itself then reaches the
        # app and its 404 problem (with CORS headers), readable by the page, not a CORS error.
        methods = tuple(allowed_methods(self.routes, scope) or allowed_methods(self.routes))
        cors = self.preflights.get(methods)
        if cors is None:
            cors = CORSMiddleware(self.app, allow_methods=methods, **self.options)
            self.preflights[methods] = cors
        await cors(scope, receive, send)
