"""The request body limit's 413, as problem+json naming the limit.

The limit itself is FastAPI's (``FastAPI(max_body_size=settings.max_body_bytes)``, lifted per
route with ``max_body_size=``); it counts the body while it arrives. Its 413 reaches clients
two ways:

- the endpoint reads the body and the limiter raises: the ``HTTPException(413)`` goes through
  the app's exception handlers (``app.api.errors``), which render ``body_too_large``;
- the request *declared* a ``Content-Length`` over the limit: Starlette's limiter then
  replaces whatever response the app starts with its own ``text/plain`` 413, outside every
  handler. :class:`BodyLimitProblemMiddleware`, wrapped around the whole stack
  (``app.main.InitlabAPI``), turns that one into the same problem+json.
"""

from __future__ import annotations

from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import body_too_large


def _content_length(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            return str(value.decode("latin-1"))
    return None


class BodyLimitProblemMiddleware:
    """Rewrites the limiter's own ``text/plain`` 413 into problem+json (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def rewrite(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", ()))
                plain = headers.get(b"content-type", b"").startswith(b"text/plain")
                limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
                replaced = message["status"] == 413 and plain and limit is not None
                if replaced:
                    problem = body_too_large(limit, _content_length(scope))
                    await problem(scope, receive, send)
                    return
            elif replaced:
                return  # the plain-text body, already replaced
            await send(message)

        await self.app(scope, receive, rewrite)
