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

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


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
    """A tensor, body or job over the configured limits (413)."""

    status = 413
    title = "Over the configured limit"
    slug = "too-large"


class ConflictError(InitlabError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class UnauthorizedError(InitlabError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class ServiceUnavailableError(InitlabError):
    status = 503
    title = "Service unavailable"
    slug = "unavailable"
