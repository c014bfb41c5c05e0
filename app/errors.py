"""Domain errors. Each carries its HTTP status; ``app.api.errors`` renders them as RFC 9457.

Pure Python: the numerical packages raise their own ``ValueError`` subclasses
(``app.initializers.InitializerError``), which the API maps onto these statuses.
"""

from __future__ import annotations

from typing import Any


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
