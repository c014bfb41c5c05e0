"""API keys: who is calling (``app.api.deps.CallerDep``).

``INITLAB_API_KEYS`` empty (the default): authentication is off and every request is the
anonymous caller. With keys configured, the job, dataset and preset endpoints need
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``: none → 401 (``WWW-Authenticate:
Bearer``), an unknown one → 403. The caller id is a short SHA-256 of the key, so the key is
never stored; jobs and uploads are recorded under it and other callers get 404 for them.

The tensor and initializer-catalog endpoints and the operational ones (``/healthz``,
``/readyz``, ``/metrics``, ``/docs``) stay public: they are read-only and served to browsers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.errors import ForbiddenError, UnauthorizedError
from app.jobs.store import ANONYMOUS

# 16 hex digits (64 bits) of SHA-256(key): distinct per key in practice, useless to recover it.
CALLER_ID_LENGTH = 16

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer <key>`, one of `INITLAB_API_KEYS` (when configured).",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="api_key",
    description="`X-API-Key: <key>`, one of `INITLAB_API_KEYS` (when configured).",
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@lru_cache(maxsize=8)
def _key_digests(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(_digest(k) for k in keys)


def caller_id(key: str) -> str:
    """The id jobs and uploads are recorded under for ``key`` (a short SHA-256, not the key)."""
    return _digest(key).hex()[:CALLER_ID_LENGTH]


def authenticate(presented: str | None, keys: Sequence[str]) -> str:
    """The caller id for the presented key: :data:`ANONYMOUS` when no keys are configured,
    401 when none is presented, 403 when it matches none of ``keys``."""
    if not keys:
        return ANONYMOUS
    if not presented:
        raise UnauthorizedError(
            "An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = _digest(presented)
    # Fixed-length digests compared against every key: the time taken says nothing about
    # which key, or how much of one, matched.
    matched = False
    for known in _key_digests(tuple(keys)):
        matched |= hmac.compare_digest(digest, known)
    if not matched:
        raise ForbiddenError("The API key is not valid for this service.")
    return digest.hex()[:CALLER_ID_LENGTH]


async def get_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> str:
    """The caller id of the request (``Authorization: Bearer`` first, then ``X-API-Key``)."""
    presented = bearer.credentials if bearer is not None else api_key
    return authenticate(presented, request.app.state.settings.api_keys)
