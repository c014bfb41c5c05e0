"""The HTTP layer of the client: base URL and API key, problem+json → :class:`ProblemError`,
bounded retries with backoff on connection errors for idempotent calls only.

A call is idempotent when it is a ``GET``/``HEAD``, or a ``POST`` that carries an
``Idempotency-Key`` (the server answers a retry with the same job). Anything else is sent
once: a lost answer to a ``DELETE`` or a plain ``POST`` may already have had its effect.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import httpx

from app.client.errors import ProblemError, ServerDownError

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "INITLAB_URL"
KEY_ENV = "INITLAB_API_KEY"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "initlab-client/1"


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all for an idempotent call; waits ``backoff`` s, doubling up to
    ``max_backoff`` s, between them."""

    attempts: int = 4
    backoff: float = 0.25
    max_backoff: float = 4.0

    def delays(self) -> Iterator[float]:
        """The wait before each retry (``attempts - 1`` of them)."""
        delay = self.backoff
        for _ in range(max(self.attempts, 1) - 1):
            yield delay
            delay = min(delay * 2, self.max_backoff)


def resolve_url(url: str | None) -> str:
    """``url``, else ``$INITLAB_URL``, else the local default; without a trailing slash."""
    return (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def resolve_key(api_key: str | None) -> str | None:
    """``api_key``, else ``$INITLAB_API_KEY``; an empty string means none."""
    key = api_key if api_key is not None else os.environ.get(KEY_ENV)
    return key or None


def _retry_after(response: httpx.Response) -> float | None:
    with contextlib.suppress(KeyError, ValueError):
        return float(response.headers["retry-after"])
    return None


def raise_for_problem(response: httpx.Response) -> None:
    """Raise :class:`ProblemError` for a 4xx/5xx answer (the body must have been read)."""
    if response.status_code < 400:
        return
    body: Any = None
    if "json" in response.headers.get("content-type", ""):
        with contextlib.suppress(ValueError):
            body = response.json()
    raise ProblemError.from_body(response.status_code, body, response.text, _retry_after(response))


def is_idempotent(method: str, headers: Mapping[str, str] | None) -> bool:
    if method.upper() in ("GET", "HEAD"):
        return True
    return method.upper() == "POST" and bool(headers) and IDEMPOTENCY_HEADER in (headers or {})


class TransportOptions(TypedDict, total=False):
    """How a client talks to its server, besides the URL and key: ``timeout`` seconds per
    request (default 30), the ``retry`` policy of idempotent calls (default
    :class:`RetryPolicy`), and an httpx ``transport`` (default: the network)."""

    timeout: float
    retry: RetryPolicy | None
    transport: httpx.BaseTransport | None


class Transport:
    """One ``httpx.Client`` on the server's base URL, with the key sent as a Bearer token."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        **options: Unpack[TransportOptions],
    ) -> None:
        self.url = resolve_url(url)
        self.retry = options.get("retry") or RetryPolicy()
        headers = {"User-Agent": USER_AGENT}
        key = resolve_key(api_key)
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        self.http = httpx.Client(
            base_url=self.url,
            timeout=options.get("timeout", 30.0),
            headers=headers,
            transport=options.get("transport"),
        )

    def close(self) -> None:
        self.http.close()

    def _send(self, idempotent: bool, send: Callable[[], httpx.Response]) -> httpx.Response:
        """``send()``, tried again after the backoff on a connection error if ``idempotent``."""
        waits = [0.0, *self.retry.delays()] if idempotent else [0.0]
        failure: httpx.TransportError | None = None
        for wait in waits:
            time.sleep(wait)
            try:
                return send()
            except httpx.TransportError as exc:
                failure = exc
        assert failure is not None
        raise ServerDownError(self.url, len(waits), failure) from failure

    def request(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send, retrying connection errors if the call is idempotent; raise for problems."""
        response = self._send(
            is_idempotent(method, headers),
            lambda: self.http.request(method, path, headers=headers, **kwargs),
        )
        raise_for_problem(response)
        return response

    @contextlib.contextmanager
    def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """A streamed response; connecting is retried as :meth:`request` does, reading is not
        (a stream that breaks raises ``httpx.TransportError`` to the reader)."""
        request = self.http.build_request(method, path, headers=headers, **kwargs)
        response = self._send(
            is_idempotent(method, headers), lambda: self.http.send(request, stream=True)
        )
        try:
            if response.status_code >= 400:
                response.read()
                raise_for_problem(response)
            yield response
        finally:
            response.close()
