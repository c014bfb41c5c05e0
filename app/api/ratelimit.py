"""Rate limits per caller and route group, counted in Redis so they hold across API processes.

Groups (the first that matches the request):

- ``tensors``: ``/v1/tensors`` (``INITLAB_RATE_LIMIT_TENSORS``);
- ``jobs``: ``/v1/jobs…`` (``INITLAB_RATE_LIMIT_JOBS``);
- ``uploads``: ``POST /v1/datasets`` (``INITLAB_RATE_LIMIT_UPLOADS``);
- ``default``: every other route (``INITLAB_RATE_LIMIT_DEFAULT``), except the probes
  ``/healthz``, ``/readyz`` and ``/metrics``, which are never limited.

A setting is in the `limits <https://limits.readthedocs.io>`_ notation (``100/minute``,
``10/second;1000/hour``); empty means no limit for the group, and with every group empty
(the default) the middleware is not installed at all. The caller is its API key (its
:func:`app.api.auth.caller_id`) when the key is one of ``INITLAB_API_KEYS``, else the client
address (uvicorn's ``--proxy-headers`` / ``--forwarded-allow-ips`` decide what that is
behind a proxy).

Counting is the ``limits`` library's fixed window, on the application's Redis (keys
``initlab:ratelimit:…``, expiring with their window). Responses carry the IETF draft's headers
(draft-ietf-httpapi-ratelimit-headers-10): ``RateLimit-Policy: "jobs";q=60;w=60`` and
``RateLimit: "jobs";r=59;t=60`` (quota, window seconds; remaining, seconds to reset); a
refused request is a 429 problem+json with ``Retry-After``. While Redis is unreachable the
limits are not enforced (a tensor request, which needs no Redis, is still served).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import authenticate
from app.api.errors import problem_response
from app.config import DEFAULT_REDIS_URL, Settings
from app.errors import InitlabError, RateLimitedError

log = logging.getLogger("initlab.ratelimit")

KEY_PREFIX = "initlab:ratelimit"
UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics"})
WARN_EVERY_SECONDS = 60.0


def route_group(method: str, path: str) -> str | None:
    """The group a request counts against (None: never limited)."""
    if path in UNLIMITED:
        return None
    if path == "/v1/tensors":
        return "tensors"
    if path == "/v1/jobs" or path.startswith("/v1/jobs/"):
        return "jobs"
    if path == "/v1/datasets" and method == "POST":
        return "uploads"
    return "default"


def group_limits(settings: Settings) -> dict[str, list[RateLimitItem]]:
    """Each group's limits from the settings (groups without one left out)."""
    configured = {
        "tensors": settings.rate_limit_tensors,
        "jobs": settings.rate_limit_jobs,
        "uploads": settings.rate_limit_uploads,
        "default": settings.rate_limit_default,
    }
    return {group: parse_many(text) for group, text in configured.items() if text.strip()}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One request's standing against its group's tightest limit."""

    allowed: bool
    quota: int
    window: int  # seconds
    remaining: int
    reset: int  # seconds until the window resets

    def headers(self, group: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-policy", f'"{group}";q={self.quota};w={self.window}'.encode()),
            (b"ratelimit", f'"{group}";r={self.remaining};t={self.reset}'.encode()),
        ]


def _presented_key(scope: Scope) -> str | None:
    key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"x-api-key":
            key = value.decode("latin-1")
    return key


class RateLimit:
    """Pure ASGI: counts each request against its group, refuses over the limit (429)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limits = group_limits(settings)
        self.api_keys: Sequence[str] = settings.api_keys
        url = settings.redis_url or DEFAULT_REDIS_URL
        self.storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            socket_connect_timeout=1.0,
            socket_timeout=1.0,
        )
        self._warned = -math.inf

    def caller(self, scope: Scope) -> str:
        """``key:<caller id>`` for a configured API key, else ``ip:<client address>``."""
        presented = _presented_key(scope)
        if self.api_keys and presented:
            try:
                return "key:" + authenticate(presented, self.api_keys)
            except InitlabError:
                pass  # a wrong key counts against its address (auth answers 403 later)
        client = scope.get("client")
        return "ip:" + (client[0] if client else "unknown")

    async def check(self, group: str, caller: str) -> Verdict | None:
        """Count the request; the verdict of the tightest limit (None: Redis unreachable).

        The fixed window of ``limits`` (``FixedWindowRateLimiter.hit`` is the same ``incr``),
        read back in the same pass: two round trips per limit instead of its three."""
        tightest: Verdict | None = None
        try:
            for item in self.limits[group]:
                key = item.key_for(group, caller)
                count = await self.storage.incr(key, item.get_expiry())
                reset_at = await self.storage.get_expiry(key)
                verdict = Verdict(
                    allowed=count <= item.amount,
                    quota=item.amount,
                    window=item.get_expiry(),
                    remaining=max(0, item.amount - count),
                    reset=max(0, math.ceil(reset_at - time.time())),
                )
                if not verdict.allowed:
                    return verdict
                if tightest is None or verdict.remaining < tightest.remaining:
                    tightest = verdict
        except (redis.RedisError, OSError) as exc:  # storage down: serve, unlimited, say so
            now = time.monotonic()
            if now - self._warned > WARN_EVERY_SECONDS:
                self._warned = now
                log.warning("rate limits not enforced, the Redis storage fails: %r", exc)
            return None
        return tightest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        group = route_group(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if group is None or group not in self.limits:
            await self.app(scope, receive, send)
            return
        verdict = await self.check(group, self.caller(scope))
        if verdict is None:
            await self.app(scope, receive, send)
            return
        headers = verdict.headers(group)
        if not verdict.allowed:
            error = RateLimitedError(
                f"Over the {group!r} rate limit of {verdict.quota} requests per "
                f"{verdict.window} s for this caller; retry in {verdict.reset} s.",
                headers={"Retry-After": str(max(1, verdict.reset))},
            )
            response = problem_response(
                error.status, error.title, error.detail, slug=error.slug, headers=error.headers
            )
            response.raw_headers += headers
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
