"""One place that renders every error as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.errors import (
    InitlabError,
    InvalidInputError,
    ServiceUnavailableError,
    describe_errors,
    echo,
)
from app.initializers import InitializerError, UnknownInitializerError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://initlab.dev/problems/"

log = logging.getLogger("initlab.errors")


def header_text(value: str) -> str:
    """A request header's value as the client wrote it: the ASGI server hands header bytes
    over as latin-1 text, so bytes that are valid UTF-8 read as UTF-8 ("é", not "Ã©")."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not latin-1 text, or bytes that are not UTF-8: as received
        return value


def _echoed(error: dict[str, Any]) -> dict[str, Any]:
    """A field error with its input made safe and short (a header's read as UTF-8)."""
    value = error["input"]
    loc = error.get("loc") or ()
    if isinstance(value, str) and loc and loc[0] == "header":
        value = header_text(value)
    return {**error, "input": echo(value)}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str = "about:blank",
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug if slug != "about:blank" else slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [_echoed(e) if "input" in e else e for e in errors]
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


async def _initlab_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InitlabError)
    if exc.status >= 500 and exc.__cause__ is not None:  # the cause, for operators only
        log.warning("%s: %r", exc.detail, exc.__cause__)
    errors = exc.errors
    if errors is None and exc.header is not None:
        got = request.headers.get(exc.header)
        errors = [{"loc": ["header", exc.header], "msg": exc.detail, "input": got}]
    return problem_response(
        exc.status, exc.title, exc.detail, slug=exc.slug, errors=errors, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "input": e.get("input")}
        for e in exc.errors()
    ]
    return problem_response(
        422, "Invalid input", describe_errors(errors), slug="invalid-input", errors=errors
    )


def body_too_large(limit: object, content_length: str | None) -> Response:
    """The 413 of the request body limit (``FastAPI(max_body_size=...)``), naming it."""
    got = f"Content-Length {content_length}" if content_length else "more was sent"
    detail = (
        f"The request body is over the limit of {limit} bytes ({got}); JSON request bodies "
        "are limited by INITLAB_MAX_BODY_BYTES (dataset uploads by INITLAB_MAX_UPLOAD_BYTES)."
    )
    return problem_response(
        413,
        "Over the configured limit",
        detail,
        slug="too-large",
        errors=[{"loc": ["body"], "msg": f"over the limit of {limit} bytes", "input": None}],
    )


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope | None = None) -> list[str]:
    """The methods of every route (of those matching ``scope``'s path, if given), sorted;
    ``HEAD`` wherever ``GET`` is (``app.api.head`` answers it)."""
    methods: set[str] = set()
    for route in iter_route_contexts(list(routes)):  # included routers flattened
        if scope is not None and route.matches(scope)[0] is Match.NONE:
            continue
        methods |= set(getattr(route, "methods", None) or ())  # a Mount has none
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _method_not_allowed(request: Request) -> Response:
    """405 with ``Allow`` listing every method some route serves on this path (the router's
    own lists only the first matching route's)."""
    allow = allowed_methods(request.app.router.routes, request.scope)
    method = request.scope.get("initlab.method", request.method)
    return problem_response(
        405,
        "Method not allowed",
        f"{method} is not allowed on {request.url.path}; allowed: {', '.join(allow)}.",
        slug="method-not-allowed",
        errors=[{"loc": ["method"], "msg": f"one of {', '.join(allow)}", "input": method}],
        headers={"Allow": ", ".join(allow)},
    )


# FastAPI's HTTPException for a body it could not parse other than as malformed JSON.
_UNPARSED_BODY = "There was an error parsing the body"


def _unparsed_body(request: Request, cause: BaseException) -> Response:
    """FastAPI's own body parsing failed other than on malformed JSON (a 422 already): JSON
    nested past Python's recursion limit, or bytes that are not UTF-8. The 422 of a malformed
    body read by :func:`app.api.bodies.parse_json`, naming ``body``."""
    if isinstance(cause, RecursionError):
        reason = "recursion limit exceeded"
    elif isinstance(cause, UnicodeDecodeError):
        reason = f"not UTF-8 (byte {cause.start}: {cause.reason})"
    else:
        reason = f"unreadable ({type(cause).__name__})"
    size = request.headers.get("content-length")
    shown = f"<{size} bytes>" if size is not None else None
    invalid = InvalidInputError(["body"], shown, f"invalid JSON: {reason}")
    return problem_response(
        invalid.status, invalid.title, invalid.detail, slug=invalid.slug, errors=invalid.errors
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 413 and MAX_BODY_SIZE_SCOPE_KEY in request.scope:
        # Only the body limiter raises a bare 413 (our own limits are TooLargeError).
        limit = request.scope[MAX_BODY_SIZE_SCOPE_KEY]
        return body_too_large(limit, request.headers.get("content-length"))
    if exc.status_code == 405:
        return _method_not_allowed(request)
    if exc.status_code == 400 and exc.detail == _UNPARSED_BODY and exc.__cause__ is not None:
        return _unparsed_body(request, exc.__cause__)
    titles = {
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        413: "Over the configured limit",
        415: "Unsupported media type",
    }
    return problem_response(
        exc.status_code,
        titles.get(exc.status_code, "HTTP error"),
        str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _engine_error(request: Request, exc: Exception) -> Response:
    # A safety net: routes map the engine's errors onto their own fields (tensors, jobs); one
    # that reaches here is still the client's input, never a 500.
    assert isinstance(exc, InitializerError)
    status = 404 if isinstance(exc, UnknownInitializerError) else 422
    loc: list[str | int] = list(exc.field.split("."))
    invalid = InvalidInputError(loc, exc.value, exc.msg)
    title = "Not found" if status == 404 else invalid.title
    slug = "not-found" if status == 404 else invalid.slug
    return problem_response(status, title, invalid.detail, slug=slug, errors=invalid.errors)


async def _redis_unavailable(_: Request, exc: Exception) -> Response:
    # The client learns that Redis is down, not where it lives (redis' message has host:port).
    log.warning("Redis unreachable: %s", exc)
    unavailable = ServiceUnavailableError("Redis is unreachable; retry in a few seconds.")
    return await _initlab_error(_, unavailable)


async def _unhandled(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "Internal server error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json renderers on ``app``."""
    app.add_exception_handler(InitlabError, _initlab_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InitializerError, _engine_error)
    # Redis gone, for every route that needs it: 503 (the stores raise redis' own errors).
    app.add_exception_handler(redis.ConnectionError, _redis_unavailable)
    app.add_exception_handler(redis.TimeoutError, _redis_unavailable)
    app.add_exception_handler(Exception, _unhandled)
