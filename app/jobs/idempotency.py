"""``Idempotency-Key`` for ``POST /v1/jobs`` (draft-ietf-httpapi-idempotency-key-header).

Reserve, then commit. A key (per caller) is reserved together with the id the job *will*
have, before anything is recorded. The job record carries that id, so whether the job was
recorded is one ``EXISTS`` away, whatever happened to the API process in between:

- key unknown → reserved (``pending``, a lease of ``LEASE_SECONDS``): go on and create the job;
- same key, another body → 422 naming the header;
- same key and body, job recorded (committed, or recorded by a process that died before it
  could commit) → the same job again;
- same key and body, job not recorded, lease live → 409 (the first request is still running);
- … lease lapsed (that process died before recording) → reserved again: the job is created.

Key: ``initlab:owner:{owner}:idempotency:{sha256(key)}`` hash ``fingerprint`` (SHA-256 of the
canonical JSON body), ``job_id``, ``state``, ``lease_until``; it expires after the window
(``INITLAB_IDEMPOTENCY_WINDOW_SECONDS``), counted from the first request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from app.errors import ConflictError, InvalidInputError
from app.jobs.keys import JOB_KEY_PREFIX, idempotency_key

HEADER = "Idempotency-Key"
LOC: list[str | int] = ["header", HEADER]
MAX_KEY_LENGTH = 255
# Longer than any submission takes from reservation to recording the job.
LEASE_SECONDS = 60


def _key(owner: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return idempotency_key(owner, digest)


def fingerprint(body: Any) -> str:
    """SHA-256 of the body's canonical JSON (keys sorted): equal for equal JSON values."""
    # json, not orjson: any integer (orjson stops at 64 bits), NaN and lone surrogates.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_key(value: str) -> str:
    """The key of an ``Idempotency-Key`` header: a structured-field string (``"..."``) or, as
    clients commonly send it, the bare value; 1-255 printable ASCII characters."""
    key = value.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidInputError(
            LOC, value, f"must be 1-{MAX_KEY_LENGTH} printable ASCII characters (e.g. a UUID)"
        )
    return key


# KEYS: the key's hash. ARGV: fingerprint, new job id, lease_s, window_s, job key prefix
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local h = redis.call('HMGET', KEYS[1], 'fingerprint', 'job_id', 'state', 'lease_until')
if h[1] then
  if h[1] ~= ARGV[1] then return {'mismatch', h[2]} end
  if redis.call('EXISTS', ARGV[5] .. h[2]) == 1 then
    redis.call('HSET', KEYS[1], 'state', 'done')
    return {'replay', h[2]}
  end
  if h[3] == 'pending' and tonumber(h[4]) > now then return {'pending', h[2]} end
  -- a lapsed reservation whose job was never recorded, or a job that is gone: start over
end
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'job_id', ARGV[2], 'state', 'pending',
  'lease_until', now + tonumber(ARGV[3]))
if not h[1] then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return {'reserved', ARGV[2]}
"""

# KEYS: the key's hash. ARGV: job id, new state ('done') or '' to release
_SETTLE = """
if redis.call('HGET', KEYS[1], 'job_id') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if redis.call('HGET', KEYS[1], 'state') == 'pending' then redis.call('DEL', KEYS[1]) end
else
  redis.call('HSET', KEYS[1], 'state', ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class Claim:
    """A reserved key (``replay`` False: create job ``job_id``) or a replay of ``job_id``."""

    owner: str
    key: str
    job_id: str
    replay: bool


class IdempotencyKeys:
    """Idempotency keys of job submissions, per caller, kept ``window_seconds``."""

    def __init__(self, client: Any, *, window_seconds: int) -> None:
        self.window = int(window_seconds)
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    def reserve(self, owner: str, key: str, body: Any, job_id: str) -> Claim:
        """Reserve ``key`` for a new job ``job_id``, or say which job it already made.

        Raises 422 (:class:`InvalidInputError`) when the key was used with another body and
        409 (:class:`ConflictError`) while the first request with it is still being handled."""
        outcome, stored = self._reserve(
            keys=[_key(owner, key)],
            args=[fingerprint(body), job_id, LEASE_SECONDS, self.window, JOB_KEY_PREFIX],
        )
        if outcome == b"mismatch":
            raise InvalidInputError(
                LOC,
                key,
                f"was already used with a different request body (for job {stored.decode()}) "
                "within the idempotency window; use a new key for a new job",
            )
        if outcome == b"pending":
            raise ConflictError(
                f"{HEADER} {key!r}: the first request with this key is still being processed; "
                "retry shortly",
                errors=[
                    {"loc": LOC, "msg": "a request with this key is in progress", "input": key}
                ],
            )
        return Claim(owner, key, stored.decode(), replay=outcome == b"replay")

    def commit(self, claim: Claim) -> None:
        """The job of ``claim`` is recorded: replays return it from now on."""
        self._settle(keys=[_key(claim.owner, claim.key)], args=[claim.job_id, "done"])

    def release(self, claim: Claim) -> None:
        """The request failed before recording the job: the key is free again."""
        self._settle(keys=[_key(claim.owner, claim.key)], args=[claim.job_id, ""])
