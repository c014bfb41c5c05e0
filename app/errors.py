"""Domain errors. Each carries its HTTP status; ``app.api.errors`` renders them as RFC 9457.

Also how a problem shows the value it is about (:func:`echo`, :func:`shown`).

Pure Python: the numerical packages raise their own ``ValueError`` subclasses
(``app.initializers.InitializerError``), which the API maps onto these statuses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# Echoed inputs (``errors[].input``) are cut short: this many items per list or object, this
# many levels deep, this many characters per string (a problem names the value; it need not
# repeat all of it). A ``detail`` shows at most DETAIL_CHARS characters of a value.
ECHO_ITEMS = 64
ECHO_DEPTH = 8
ECHO_CHARS = 1000
DETAIL_CHARS = 200
CUT = "..."


def echo(value: Any, depth: int = 0) -> Any:
    """An input value as a problem echoes it: safe for JSON (NaN/inf, huge integers, bytes,
    deep nesting, odd objects) and short, every cut marked with ``...``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        # orjson serializes 64-bit integers only; str() refuses beyond 4300 digits.
        bits = value.bit_length()
        return str(value) if bits <= 4000 else f"<{bits}-bit integer>"
    if isinstance(value, str):
        return value if len(value) <= ECHO_CHARS else value[:ECHO_CHARS] + CUT
    if isinstance(value, int | float | bool) or value is None:
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, list | tuple | dict) and depth >= ECHO_DEPTH:
        return "[...]" if isinstance(value, list | tuple) else "{...}"
    if isinstance(value, list | tuple):
        items = [echo(v, depth + 1) for v in value[:ECHO_ITEMS]]
        return [*items, CUT] if len(value) > ECHO_ITEMS else items
    if isinstance(value, dict):
        out = {str(k)[:ECHO_CHARS]: echo(v, depth + 1) for k, v in list(value.items())[:ECHO_ITEMS]}
        if len(value) > ECHO_ITEMS:
            out[CUT] = f"{len(value) - ECHO_ITEMS} more"
        return out
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + CUT


def shown(value: Any, limit: int = DETAIL_CHARS) -> str:
    """``value`` as a ``detail`` shows it: the repr of its :func:`echo`, at most ``limit``
    characters. A longer one is cut after its last whole item that fits (``, `` boundary),
    so no number or string is cut in two, and ends with ``...``."""
    text = repr(echo(value))
    if len(text) <= limit:
        return text
    head = text[: limit - len(CUT)]
    boundary = head.rfind(", ")
    if boundary >= limit // 2:
        head = head[: boundary + 1]
    return f"{head} {CUT}" if head.endswith(",") else head + CUT


def describe_errors(errors: Sequence[dict[str, Any]], at_most: int = 5) -> str:
    """The ``detail`` of field errors (``{loc, msg, input}``): the first ``at_most`` as
    ``loc: msg (got value)``, then how many more there are."""
    parts = []
    for e in errors[:at_most]:
        loc = ".".join(str(p) for p in e.get("loc", ())) or "body"
        got = f" (got {shown(e['input'])})" if "input" in e else ""
        parts.append(f"{loc}: {e.get('msg', '')}{got}")
    more = f" (+{len(errors) - at_most} more)" if len(errors) > at_most else ""
    return "; ".join(parts) + more


class InitlabError(Exception):
    """Base of every error the service reports to clients."""

    status: int = 400
    title: str = "Bad request"
    slug: str = "bad-request"
    # The request header the error is about, if it is about one: an error raised without
    # ``errors`` then names it and the value received (``app.api.errors``).
    header: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class InvalidInputError(InitlabError):
    """The request is well-formed but a field has an invalid value (422)."""

    status = 422
    title = "Invalid input"
    slug = "invalid-input"

    def __init__(self, loc: list[str | int], value: Any, msg: str) -> None:
        super().__init__(
            f"{'.'.join(str(p) for p in loc)}: {msg}",
            errors=[{"loc": loc, "msg": msg, "input": value}],
        )


class NotFoundError(InitlabError):
    status = 404
    title = "Not found"
    slug = "not-found"


class NotAcceptableError(InitlabError):
    status = 406
    title = "Not acceptable"
    slug = "not-acceptable"


class TooLargeError(InitlabError):
    """A tensor, body or job over the configured limits (413).

    Given ``loc`` (the field's path) and ``value``, ``errors`` names them like
    :class:`InvalidInputError` does (``msg`` is then the detail)."""

    status = 413
    title = "Over the configured limit"
    slug = "too-large"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        loc: list[str | int] | None = None,
        value: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if errors is None and loc is not None:
            errors = [{"loc": loc, "msg": detail, "input": value}]
        super().__init__(detail, errors=errors, headers=headers)


class RequestTimeoutError(InitlabError):
    """The request body did not arrive in the time allowed (408; RFC 9110 §15.5.9: the
    connection is closed)."""

    status = 408
    title = "Request timeout"
    slug = "request-timeout"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors, headers={"Connection": "close"})


class ConflictError(InitlabError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class UnauthorizedError(InitlabError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class ForbiddenError(InitlabError):
    """Credentials that are not valid for this service (403)."""

    status = 403
    title = "Forbidden"
    slug = "forbidden"


# Seconds a client is told to wait (``Retry-After``) when a backing service is unreachable.
RETRY_AFTER_SECONDS = 5


class ServiceUnavailableError(InitlabError):
    """A backing service (Redis, the job queue) is unreachable (503 with ``Retry-After``).

    The detail names which one, never its address."""

    status = 503
    title = "Service unavailable"
    slug = "unavailable"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
        super().__init__(detail, errors=errors, headers=headers)


class RateLimitedError(InitlabError):
    """Too many requests from one caller in a route group's window (429)."""

    status = 429
    title = "Too many requests"
    slug = "rate-limited"
