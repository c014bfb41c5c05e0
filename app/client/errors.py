"""The client's two errors: the server said no (problem+json), or there is no server to ask."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of every error :mod:`app.client` raises."""


class ProblemError(ClientError):
    """An RFC 9457 problem+json answer (any 4xx or 5xx): ``status``, ``field``, ``detail``.

    ``field`` is the first error's ``loc`` joined with dots, as the server's detail writes it
    (``body.shape.1``, ``header.idempotency-key``), or None when the problem names no field;
    ``value`` is the value the server received there; ``errors`` holds every entry.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str = "",
        type: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.title = title
        self.type = type
        self.errors = errors or []
        self.retry_after = retry_after
        first = self.errors[0] if self.errors else {}
        loc = first.get("loc")
        self.field: str | None = ".".join(str(p) for p in loc) if loc else None
        self.value: Any = first.get("input")
        super().__init__(f"{status} {title or 'error'}: {detail}")

    @classmethod
    def from_body(
        cls, status: int, body: Any, text: str, retry_after: float | None = None
    ) -> ProblemError:
        """From a parsed problem document, or the raw text of a non-problem error body."""
        if not isinstance(body, dict):
            return cls(status, text.strip()[:500] or f"HTTP {status}", retry_after=retry_after)
        errors = body.get("errors")
        return cls(
            int(body.get("status") or status),
            str(body.get("detail") or body.get("title") or f"HTTP {status}"),
            title=str(body.get("title") or ""),
            type=str(body.get("type") or "about:blank"),
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            retry_after=retry_after,
        )


class ServerDownError(ClientError):
    """No answer from the server (refused, unreachable, timed out) after ``attempts`` tries."""

    def __init__(self, url: str, attempts: int, cause: Exception) -> None:
        self.url = url
        self.attempts = attempts
        self.cause = cause
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"initlab server at {url} is not answering ({tries}): {cause}")
