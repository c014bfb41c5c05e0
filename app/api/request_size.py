"""Bounds on the request line and headers, refused as problem+json before any route runs.

- a query string over ``INITLAB_MAX_QUERY_BYTES`` → ``414 URI Too Long``;
- request headers over ``INITLAB_MAX_HEADER_BYTES`` in all (names and values) →
  ``431 Request Header Fields Too Large``.

uvicorn refuses on its own only what its HTTP parser cannot take, and takes headers of any
size; everything between is ours to answer. Its httptools parser hands the request target to
``httptools.parse_url`` (http-parser's ``http_parser_parse_url``, 16-bit offsets and lengths):
a target of 65,536 bytes or more is an ``HttpParserInvalidURLError``, answered with uvicorn's
``text/plain`` 400 before the application sees the request; no uvicorn setting moves it.
Pure ASGI: a request within the bounds costs a length and a sum over its headers.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import problem_response


class RequestSizeLimit:
    """414 / 431 problem+json for a query string / headers over their bounds."""

    def __init__(self, app: ASGIApp, *, max_query_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_query_bytes, self.max_header_bytes = max_query_bytes, max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = len(scope["query_string"])
            headers = sum(len(k) + len(v) for k, v in scope["headers"])
            refusal = None
            if query > self.max_query_bytes:
                refusal = _refusal(
                    414,
                    "URI too long",
                    f"The query string is {query} bytes, over the limit of "
                    f"{self.max_query_bytes} (INITLAB_MAX_QUERY_BYTES); send large "
                    "parameters in a POST body.",
                    "query",
                    self.max_query_bytes,
                    query,
                )
            elif headers > self.max_header_bytes:
                refusal = _refusal(
                    431,
                    "Request header fields too large",
                    f"The request headers are {headers} bytes in all, over the limit of "
                    f"{self.max_header_bytes} (INITLAB_MAX_HEADER_BYTES).",
                    "header",
                    self.max_header_bytes,
                    headers,
                )
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(status: int, title: str, detail: str, loc: str, limit: int, got: int) -> Response:
    slug = title.lower().replace(" ", "-")
    error = {"loc": [loc], "msg": f"at most {limit} bytes", "input": f"<{got} bytes>"}
    return problem_response(status, title, detail, slug=slug, errors=[error])
