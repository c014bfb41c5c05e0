"""``HEAD`` on every ``GET`` route: the GET's status and headers, no body (RFC 9110 §9.3.2).

One pure ASGI middleware instead of a ``HEAD`` method on every route: the request goes down
the stack as a ``GET`` (so the direct tensor dispatch, conditional requests and ``304``,
compression and CORS all see what they see for a GET), and the response start goes out as
is — ``Content-Length`` and ``ETag`` included — followed by an empty body. The app is then
stopped, so a stream (Server-Sent Events) ends at its headers.

The server keeps its own scope (method ``HEAD``), so uvicorn sends no body bytes either.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The client's method when it differs from the scope's (the 405 names it: app.api.errors).
METHOD_SCOPE_KEY = "initlab.method"


class _HeadersSent(BaseException):
    """Stops the app once the headers are out. A BaseException, like a cancellation, so that
    no exception handler of the app (they catch ``Exception``) takes it for an error."""


class HeadAsGet:
    """Answers ``HEAD`` as the ``GET`` of the same URL would, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        inner = {**scope, "method": "GET", METHOD_SCOPE_KEY: "HEAD"}

        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                raise _HeadersSent

        try:
            await self.app(inner, receive, send_headers)
        except* _HeadersSent:
            pass
        finally:
            # The matched route, for the metrics middleware around this one.
            if "route" in inner:
                scope["route"] = inner["route"]
