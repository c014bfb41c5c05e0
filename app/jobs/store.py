"""The job record in Redis: the only module that knows the ``initlab:`` keys.

Keys (every one expires with the job's TTL, refreshed on each write):

- ``initlab:job:{id}``                 hash: spec, status, timestamps, run counters, error
- ``initlab:job:{id}:run:{i}``         hash: one (scheme, repeat) run: status, attempt, epoch,
  batch, final (JSON), seconds, worker, error, enqueued_at, resends
- ``initlab:job:{id}:run:{i}:loss``    list: JSON chunks ``[[step, loss], ...]`` of batch losses
- ``initlab:job:{id}:run:{i}:epochs``  list: one JSON epoch record per item (append-only)
- ``initlab:job:{id}:run:{i}:diag``    list: JSON ``[when, layers]`` diagnostics snapshots
- ``initlab:job:{id}:events``          stream (MAXLEN-capped): progress events for SSE
- ``initlab:job:{id}:cancel``          string: present once the job is cancelled
- ``initlab:job:{id}:lease:{i}``       string with a short TTL: the worker running run ``i``
- ``initlab:jobs``                     sorted set: every job id by creation time
- ``initlab:owner:{owner}:jobs``       sorted set: one caller's job ids by creation time (listing)
- ``initlab:running``                  set: ``{id}:{i}`` of runs that are running (watchdog)
- ``initlab:queued``                   sorted set: ``{id}:{i}`` of queued runs, score = when
  the watchdog sends it again if still queued (``queued_resend_seconds`` after each send)
- ``initlab:workers``                  sorted set: worker hostnames, score = heartbeat expiry
  (Redis server time; ``/readyz``)
- ``initlab:dataset:{id}``             hash: an uploaded ``.npz`` and its metadata
- ``initlab:datasets``                 sorted set: upload ids by creation time
- ``initlab:owner:{owner}:datasets``   sorted set: one caller's upload ids by creation time

Jobs and uploads record their owner (the caller id, ``app.api.auth``; :data:`ANONYMOUS`
without API keys). Reads given an ``owner`` treat another owner's record as unknown.

Status transitions are Lua scripts, so they are atomic across API processes and workers:
queued → running (first run claimed) → succeeded | failed (last run finished) and
queued/running → cancelled. A run is claimed with an attempt counter; every write of a run
carries that attempt and is dropped when it is stale, so a redelivered or re-enqueued run
overwrites its record (the claim resets its curves) and never duplicates points.

Writes are O(1) per report: batch losses, epoch records and diagnostics are appended (RPUSH)
and assembled on read, never rewritten.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

PREFIX = "initlab:"
INDEX_KEY = PREFIX + "jobs"
RUNNING_KEY = PREFIX + "running"
QUEUED_KEY = PREFIX + "queued"
WORKERS_KEY = PREFIX + "workers"
DATASETS_KEY = PREFIX + "datasets"
# The owner of jobs and uploads made without an API key (authentication off), and of records
# written before owners were recorded.
ANONYMOUS = "anonymous"

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
RUN_TERMINAL = frozenset({"succeeded", "diverged", "failed", "cancelled"})


def is_terminal(status: str | None) -> bool:
    """Whether a job status is final."""
    return status in TERMINAL


def new_job_id() -> str:
    """A fresh job id (``job_<24 hex>``)."""
    return "job_" + secrets.token_hex(12)


def _job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def _run_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}"


def _loss_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}:loss"


def _epochs_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}:epochs"


def _diag_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}:diag"


def _lease_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:lease:{index}"


def _events_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:events"


def _cancel_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:cancel"


def cancel_channel(job_id: str) -> str:
    """The pub/sub channel a cancel is announced on (runs stop on it within one batch)."""
    return f"{PREFIX}job:{job_id}:cancelled"


def _dataset_key(dataset_id: str) -> str:
    return f"{PREFIX}dataset:{dataset_id}"


def _owner_jobs_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:jobs"


def _owner_datasets_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:datasets"


def _owned(stored: bytes | None, owner: str | None) -> bool:
    """Whether a record whose owner field is ``stored`` is visible to ``owner`` (None: anyone)."""
    return owner is None or (_s(stored) or ANONYMOUS) == owner


def _member(job_id: str, index: int) -> str:
    return f"{job_id}:{index}"


def _iso(ts: bytes | str | float | None) -> str | None:
    if ts in (None, b"", ""):
        return None
    value = float(ts)
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def _s(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    """mean / std (population) / min / max over the finite values; all None if there are none."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return {"mean": None, "std": None, "min": None, "max": None}
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / len(xs)
    return {"mean": mean, "std": math.sqrt(var), "min": min(xs), "max": max(xs)}


# --------------------------------------------------------------------------------------------
# Lua: every status transition is one atomic script.

_EXPIRE_ALL = """
local function expire_all(keys, ttl)
  for _, k in ipairs(keys) do redis.call('EXPIRE', k, ttl) end
end
local function event(key, maxlen, data)
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'data', data)
end
local function push_chunks(key, argv, first)
  for i = first, #argv do redis.call('RPUSH', key, argv[i]) end
end
-- Whether the job exists and is not final, and the run has status want.
local function run_is(job, run, want)
  local jstatus = redis.call('HGET', job, 'status')
  if (not jstatus) or jstatus == 'cancelled' or jstatus == 'succeeded' or jstatus == 'failed' then
    return false
  end
  return redis.call('HGET', run, 'status') == want
end
-- ARGV[at] = n, then n items appended to key; returns the index after them.
local function push_counted(key, argv, at)
  local n = tonumber(argv[at])
  for i = at + 1, at + n do redis.call('RPUSH', key, argv[i]) end
  return at + n + 1
end
"""

# KEYS: job, run, loss, lease, events, running, epochs, diag, queued
# ARGV: worker, lease_ms, now, ttl, member, maxlen, run_index
_CLAIM = (
    _EXPIRE_ALL
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone', 0} end
local jstatus = redis.call('HGET', KEYS[1], 'status')
if jstatus == 'cancelled' or jstatus == 'succeeded' or jstatus == 'failed' then
  return {'terminal', 0}
end
local rstatus = redis.call('HGET', KEYS[2], 'status')
if rstatus ~= 'queued' and rstatus ~= 'running' then return {'done', 0} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {'busy', 0} end
local attempt = redis.call('HINCRBY', KEYS[2], 'attempt', 1)
redis.call('HSET', KEYS[2], 'status', 'running', 'started_at', ARGV[3], 'worker', ARGV[1],
  'epoch', 0, 'batch', 0, 'final', 'null',
  'error', '', 'seconds', '', 'last_batch_loss', '', 'finished_at', '')
redis.call('HDEL', KEYS[2], 'epochs', 'diagnostics')
redis.call('DEL', KEYS[3], KEYS[7], KEYS[8])
redis.call('SET', KEYS[4], ARGV[1] .. '#' .. attempt, 'PX', ARGV[2])
redis.call('SADD', KEYS[6], ARGV[5])
redis.call('ZREM', KEYS[9], ARGV[5])
if jstatus == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[3])
  event(KEYS[5], ARGV[6], '{"type":"status","status":"running"}')
end
event(KEYS[5], ARGV[6], '{"type":"run","run":' .. ARGV[7] .. ',"status":"running","attempt":'
  .. attempt .. '}')
expire_all({KEYS[1], KEYS[2], KEYS[3], KEYS[5]}, ARGV[4])
return {'ok', attempt}
"""
)

# KEYS: job, run, loss, events, cancel, epochs, diag
# ARGV: attempt, ttl, maxlen, event ('' for none), n_fields, field, value, ...,
#       n_epochs, epoch records..., n_diag, diagnostics snapshots..., loss chunks...
_UPDATE = (
    _EXPIRE_ALL
    + """
if redis.call('HGET', KEYS[2], 'attempt') ~= ARGV[1] then return -1 end
local rstatus = redis.call('HGET', KEYS[2], 'status')
if rstatus == 'cancelled' then return 1 end
if rstatus ~= 'running' then return -1 end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do redis.call('HSET', KEYS[2], ARGV[6 + 2 * i], ARGV[7 + 2 * i]) end
local at = push_counted(KEYS[6], ARGV, 6 + 2 * n)
at = push_counted(KEYS[7], ARGV, at)
push_chunks(KEYS[3], ARGV, at)
if ARGV[4] ~= '' then event(KEYS[4], ARGV[3], ARGV[4]) end
expire_all({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7]}, ARGV[2])
return redis.call('EXISTS', KEYS[5])
"""
)

# KEYS: job, run, loss, events, running, lease, epochs, diag, queued
# ARGV: attempt, ttl, maxlen, now, member, status, error, run_index, n_fields, f, v, ..., chunks
_FINISH = (
    _EXPIRE_ALL
    + """
if redis.call('HGET', KEYS[2], 'attempt') ~= ARGV[1] then return 'stale' end
local rstatus = redis.call('HGET', KEYS[2], 'status')
if rstatus ~= 'running' and rstatus ~= 'cancelled' then return 'stale' end
local n = tonumber(ARGV[9])
for i = 0, n - 1 do redis.call('HSET', KEYS[2], ARGV[10 + 2 * i], ARGV[11 + 2 * i]) end
push_chunks(KEYS[3], ARGV, 10 + 2 * n)
redis.call('SREM', KEYS[5], ARGV[5])
redis.call('ZREM', KEYS[9], ARGV[5])
redis.call('DEL', KEYS[6])
expire_all({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7], KEYS[8]}, ARGV[2])
if rstatus == 'cancelled' then return 'cancelled' end
local status = ARGV[6]
redis.call('HSET', KEYS[2], 'status', status, 'finished_at', ARGV[4], 'error', ARGV[7])
event(KEYS[4], ARGV[3], '{"type":"run","run":' .. ARGV[8] .. ',"status":"' .. status .. '"}')
local done = redis.call('HINCRBY', KEYS[1], 'runs_done', 1)
if status == 'failed' then
  redis.call('HINCRBY', KEYS[1], 'runs_failed', 1)
  if redis.call('HGET', KEYS[1], 'error') == '' then
    redis.call('HSET', KEYS[1], 'error', 'run ' .. ARGV[8] .. ': ' .. ARGV[7])
  end
end
local jstatus = redis.call('HGET', KEYS[1], 'status')
if jstatus == 'cancelled' or jstatus == 'succeeded' or jstatus == 'failed' then return status end
if done >= tonumber(redis.call('HGET', KEYS[1], 'runs_total')) then
  local final = 'succeeded'
  if tonumber(redis.call('HGET', KEYS[1], 'runs_failed') or '0') > 0 then final = 'failed' end
  redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[4])
  event(KEYS[4], ARGV[3], '{"type":"status","status":"' .. final .. '"}')
  event(KEYS[4], ARGV[3], '{"type":"end","status":"' .. final .. '"}')
end
return status
"""
)

# KEYS: job, events, cancel, running, queued, run_0 .. run_{n-1}
# ARGV: now, ttl, maxlen, job_id
_CANCEL = (
    _EXPIRE_ALL
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local jstatus = redis.call('HGET', KEYS[1], 'status')
if jstatus == 'cancelled' or jstatus == 'succeeded' or jstatus == 'failed' then return jstatus end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
local keys = {KEYS[1], KEYS[2]}
for i = 6, #KEYS do
  local rs = redis.call('HGET', KEYS[i], 'status')
  if rs == 'queued' or rs == 'running' then
    redis.call('HSET', KEYS[i], 'status', 'cancelled', 'finished_at', ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'runs_done', 1)
  end
  redis.call('SREM', KEYS[4], ARGV[4] .. ':' .. (i - 6))
  redis.call('ZREM', KEYS[5], ARGV[4] .. ':' .. (i - 6))
  table.insert(keys, KEYS[i])
end
event(KEYS[2], ARGV[3], '{"type":"status","status":"cancelled"}')
event(KEYS[2], ARGV[3], '{"type":"end","status":"cancelled"}')
expire_all(keys, ARGV[2])
return jstatus
"""
)

# KEYS: job, run, lease, running, events, queued
# ARGV: member, maxlen, run_index, now, resend_at
_REQUEUE = (
    _EXPIRE_ALL
    + """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if not run_is(KEYS[1], KEYS[2], 'running') then
  redis.call('SREM', KEYS[4], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[2], 'status', 'queued', 'enqueued_at', ARGV[4], 'resends', 0)
redis.call('HINCRBY', KEYS[2], 'requeues', 1)
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
event(KEYS[5], ARGV[2], '{"type":"run","run":' .. ARGV[3] .. ',"status":"queued"}')
return 1
"""
)

# A queued run whose resend time passed: send it again (1), pushing the next resend out by
# resend_seconds × 2^resends (at most 64×); a run no longer queued leaves the index (0).
# KEYS: job, run, queued ; ARGV: member, now, resend_seconds
_RESEND = (
    _EXPIRE_ALL
    + """
local due = redis.call('ZSCORE', KEYS[3], ARGV[1])
if (not due) or tonumber(due) > tonumber(ARGV[2]) then return 0 end
if not run_is(KEYS[1], KEYS[2], 'queued') then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
local n = redis.call('HINCRBY', KEYS[2], 'resends', 1)
local wait = tonumber(ARGV[3]) * math.pow(2, math.min(n, 6))
redis.call('ZADD', KEYS[3], tonumber(ARGV[2]) + wait, ARGV[1])
redis.call('HSET', KEYS[2], 'enqueued_at', ARGV[2])
return 1
"""
)

# Worker heartbeats on the Redis server's clock. KEYS: workers ; ARGV: hostname, seconds
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# KEYS: workers
_LIVE_WORKERS = """
local t = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (tonumber(t[1]) + tonumber(t[2]) / 1e6), '+inf')
"""

# KEYS: lease ; ARGV: token, lease_ms
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class EventsUnreadableError(Exception):
    """Redis refused to read a job's event stream from the given position."""


class RunClaim:
    """The outcome of :meth:`JobStore.claim_run`: ``state`` is ``ok`` (``attempt`` is valid),
    ``gone`` (job expired), ``terminal`` (job finished or cancelled), ``done`` (this run already
    finished) or ``busy`` (another live worker holds the run's lease)."""

    __slots__ = ("attempt", "state", "token")

    def __init__(self, state: str, attempt: int, token: str) -> None:
        self.state = state
        self.attempt = attempt
        self.token = token

    @property
    def ok(self) -> bool:
        return self.state == "ok"


class JobStore:
    """Create, update and read job records. Thread-safe (a ``redis.Redis`` pool)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: int,
        events_maxlen: int = 10_000,
        queued_resend_seconds: float = 60.0,
    ):
        # redis-py's response types are unions over sync/async clients: keep them as Any here.
        self.redis: Any = client
        self.ttl = int(ttl_seconds)
        self.events_maxlen = int(events_maxlen)
        self.queued_resend_seconds = float(queued_resend_seconds)
        self._claim = client.register_script(_CLAIM)
        self._update = client.register_script(_UPDATE)
        self._finish = client.register_script(_FINISH)
        self._cancel = client.register_script(_CANCEL)
        self._requeue = client.register_script(_REQUEUE)
        self._renew = client.register_script(_RENEW)
        self._resend = client.register_script(_RESEND)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._live_workers = client.register_script(_LIVE_WORKERS)

    @classmethod
    def from_settings(cls, settings: Any = None) -> JobStore:
        """A store on ``settings``' Redis (default: :func:`app.config.get_settings`), with
        its TTL, stream length and resend time."""
        from app.config import get_settings

        settings = settings or get_settings()
        return cls(
            redis_client(settings.redis_url),
            ttl_seconds=settings.job_ttl_seconds,
            events_maxlen=settings.events_maxlen,
            queued_resend_seconds=settings.queued_resend_seconds,
        )

    # ---------------------------------------------------------------- create / read / list

    def create_job(
        self,
        spec: Mapping[str, Any],
        runs: Sequence[Mapping[str, Any]],
        *,
        owner: str = ANONYMOUS,
        job_id: str | None = None,
    ) -> dict:
        """Store a new job (status ``queued``) of ``owner`` and its runs; returns the job
        document. ``job_id``: one chosen beforehand (:func:`new_job_id`), e.g. reserved for
        an ``Idempotency-Key``.

        ``runs``: one mapping per (scheme, repeat) with ``scheme`` (index), ``label``,
        ``initializer``, ``repeat``, ``seed`` and ``total_batches``.
        """
        job_id = job_id or new_job_id()
        now = time.time()
        pipe = self.redis.pipeline(transaction=True)
        job_key = _job_key(job_id)
        pipe.hset(
            job_key,
            mapping={
                "spec": _dumps(spec),
                "owner": owner,
                "status": "queued",
                "created_at": repr(now),
                "started_at": "",
                "finished_at": "",
                "runs_total": len(runs),
                "runs_done": 0,
                "runs_failed": 0,
                "error": "",
            },
        )
        for i, run in enumerate(runs):
            pipe.hset(
                _run_key(job_id, i),
                mapping={
                    "scheme": int(run["scheme"]),
                    "label": str(run["label"]),
                    "initializer": str(run.get("initializer", "")),
                    "repeat": int(run["repeat"]),
                    "seed": int(run["seed"]),
                    "total_batches": int(run.get("total_batches", 0)),
                    "status": "queued",
                    "attempt": 0,
                    "requeues": 0,
                    "epoch": 0,
                    "batch": 0,
                    "final": "null",
                    "seconds": "",
                    "last_batch_loss": "",
                    "error": "",
                    "worker": "",
                    "started_at": "",
                    "finished_at": "",
                    "enqueued_at": repr(now),
                    "resends": 0,
                },
            )
            pipe.expire(_run_key(job_id, i), self.ttl)
        # Sent right after this by the caller; if that never happens (the API died, the
        # broker failed), the watchdog sends them once this time has passed.
        resend_at = now + self.queued_resend_seconds
        pipe.zadd(QUEUED_KEY, {_member(job_id, i): resend_at for i in range(len(runs))})
        events = _events_key(job_id)
        pipe.xadd(
            events,
            {"data": b'{"type":"status","status":"queued"}'},
            maxlen=self.events_maxlen,
            approximate=True,
        )
        pipe.expire(job_key, self.ttl)
        pipe.expire(events, self.ttl)
        pipe.zadd(INDEX_KEY, {job_id: now})
        pipe.zadd(_owner_jobs_key(owner), {job_id: now})
        pipe.expire(_owner_jobs_key(owner), self.ttl)
        pipe.execute()
        doc = self.get_job(job_id)
        assert doc is not None
        return doc

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(_job_key(job_id)))

    def get_status(self, job_id: str) -> str | None:
        """The job's status, or None for an unknown or expired id."""
        return _s(self.redis.hget(_job_key(job_id), "status"))

    def get_spec(self, job_id: str) -> dict | None:
        raw = self.redis.hget(_job_key(job_id), "spec")
        return None if raw is None else orjson.loads(raw)

    def get_run(self, job_id: str, index: int) -> dict | None:
        """One run's document (as in :meth:`get_job`), or None."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(_run_key(job_id, index))
        self._queue_curves(pipe, job_id, index)
        raw, *curves = pipe.execute()
        return self._run_doc(index, raw, *curves) if raw else None

    @staticmethod
    def _queue_curves(pipe: Any, job_id: str, index: int) -> None:
        """Queue the reads of a run's append-only lists (loss chunks, epochs, diagnostics)."""
        pipe.lrange(_loss_key(job_id, index), 0, -1)
        pipe.lrange(_epochs_key(job_id, index), 0, -1)
        pipe.lrange(_diag_key(job_id, index), 0, -1)

    def get_job(
        self, job_id: str, *, include_runs: bool = True, owner: str | None = None
    ) -> dict | None:
        """The api.md job document, or None for an unknown or expired id (or, given
        ``owner``, a job of another owner)."""
        raw = self.redis.hgetall(_job_key(job_id))
        if not raw or not _owned(raw.get(b"owner"), owner):
            return None
        n = int(raw.get(b"runs_total", b"0"))
        pipe = self.redis.pipeline(transaction=False)
        for i in range(n):
            pipe.hgetall(_run_key(job_id, i))
            if include_runs:
                self._queue_curves(pipe, job_id, i)
        out = pipe.execute()
        per_run = 4 if include_runs else 1
        runs: list[dict] = []
        for i in range(n):
            rraw, *curves = out[per_run * i : per_run * (i + 1)]
            if rraw:
                runs.append(self._run_doc(i, rraw, *curves, with_curves=include_runs))
        return self._job_doc(job_id, raw, runs, include_runs=include_runs)

    def list_jobs(
        self, limit: int = 20, cursor: str | None = None, *, owner: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Jobs newest first (``owner``'s only, if given): ``(brief documents, next cursor or
        None)``.

        The cursor is opaque (the last item's creation time and id); expired ids are pruned
        from the index as they are met.
        """
        index = INDEX_KEY if owner is None else _owner_jobs_key(owner)
        limit = max(1, min(int(limit), 100))
        max_score: float | str = "+inf"
        after: str | None = None
        if cursor:
            max_score, after = _decode_cursor(cursor)
        found: list[tuple[float, dict]] = []
        offset = 0
        while len(found) <= limit:
            page = self.redis.zrevrangebyscore(
                index, max_score, "-inf", start=offset, num=limit + 16, withscores=True
            )
            if not page:
                break
            offset += len(page)
            for member, score in page:
                job_id = member.decode()
                # Equal scores come in reverse lexicographic order: skip up to the cursor item.
                if after is not None and score == max_score and job_id >= after:
                    continue
                doc = self.get_job(job_id, include_runs=False)
                if doc is None:  # expired: prune the index
                    self.redis.zrem(index, job_id)
                    offset -= 1
                    continue
                found.append((score, doc))
                if len(found) > limit:
                    break
        next_cursor = None
        if len(found) > limit:
            score, last = found[limit - 1]
            next_cursor = _encode_cursor(score, last["id"])
        return [doc for _, doc in found[:limit]], next_cursor

    # ---------------------------------------------------------------- cancel

    def cancel_job(self, job_id: str, *, owner: str | None = None) -> str | None:
        """Cancel a queued or running job. Returns the status it had before (None: unknown,
        or given ``owner``, another owner's job).

        The cancel is published on :func:`cancel_channel`, so running runs stop within one
        batch; the flag (:meth:`cancel_requested`) stays for runs that start later, and their
        later writes are ignored.
        """
        n, stored_owner = self.redis.hmget(_job_key(job_id), ["runs_total", "owner"])
        if n is None or not _owned(stored_owner, owner):
            return None
        keys = [_job_key(job_id), _events_key(job_id), _cancel_key(job_id), RUNNING_KEY, QUEUED_KEY]
        keys += [_run_key(job_id, i) for i in range(int(n))]
        before = self._cancel(
            keys=keys, args=[repr(time.time()), self.ttl, self.events_maxlen, job_id]
        )
        self.redis.publish(cancel_channel(job_id), b"1")
        return None if before is None else _s(before)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job was cancelled (or has expired): one ``EXISTS`` of two keys."""
        # 1 = the job exists without a cancel flag; 2 = cancelled; 0 = expired.
        return int(self.redis.exists(_cancel_key(job_id), _job_key(job_id))) != 1

    # ---------------------------------------------------------------- runs (worker side)

    def claim_run(self, job_id: str, index: int, worker: str, lease_seconds: float) -> RunClaim:
        """Start (or restart) run ``index``: resets its record under a new attempt number."""
        state, attempt = self._claim(
            keys=[
                _job_key(job_id),
                _run_key(job_id, index),
                _loss_key(job_id, index),
                _lease_key(job_id, index),
                _events_key(job_id),
                RUNNING_KEY,
                _epochs_key(job_id, index),
                _diag_key(job_id, index),
                QUEUED_KEY,
            ],
            args=[
                worker,
                int(lease_seconds * 1000),
                repr(time.time()),
                self.ttl,
                _member(job_id, index),
                self.events_maxlen,
                index,
            ],
        )
        attempt = int(attempt)
        return RunClaim(state.decode(), attempt, f"{worker}#{attempt}")

    def renew_lease(self, job_id: str, index: int, token: str, lease_seconds: float) -> bool:
        """Extend the run's lease if ``token`` still holds it."""
        return bool(
            self._renew(keys=[_lease_key(job_id, index)], args=[token, int(lease_seconds * 1000)])
        )

    def update_run(
        self,
        job_id: str,
        index: int,
        attempt: int,
        *,
        fields: Mapping[str, Any] | None = None,
        points: Sequence[tuple[int, float]] = (),
        event: Mapping[str, Any] | None = None,
        epochs: Sequence[Mapping[str, Any]] = (),
        diagnostics: Sequence[tuple[str, Any]] = (),
    ) -> int:
        """Write progress of a running run: hash ``fields`` (JSON-encoded when not scalar),
        new batch-loss ``points``, new epoch records, new ``(when, layers)`` diagnostics
        snapshots (all appended) and an ``event``. Returns 1 if the job was cancelled, 0 to
        carry on, -1 if this attempt is stale (another attempt owns the run, or it ended)."""
        flat = _flatten(fields or {})
        args: list[Any] = [
            attempt,
            self.ttl,
            self.events_maxlen,
            _dumps(event) if event else "",
            len(flat) // 2,
            *flat,
            len(epochs),
            *(_dumps(record) for record in epochs),
            len(diagnostics),
            *(_dumps([when, layers]) for when, layers in diagnostics),
        ]
        if points:
            args.append(_dumps(points))
        return int(
            self._update(
                keys=[
                    _job_key(job_id),
                    _run_key(job_id, index),
                    _loss_key(job_id, index),
                    _events_key(job_id),
                    _cancel_key(job_id),
                    _epochs_key(job_id, index),
                    _diag_key(job_id, index),
                ],
                args=args,
            )
        )

    def finish_run(
        self,
        job_id: str,
        index: int,
        attempt: int,
        status: str,
        *,
        fields: Mapping[str, Any] | None = None,
        points: Sequence[tuple[int, float]] = (),
        error: str = "",
    ) -> str:
        """Record a run's end (``succeeded`` | ``diverged`` | ``failed`` | ``cancelled``) and,
        when it was the last one, the job's final status. Returns the run's recorded status, or
        ``stale`` when this attempt no longer owns the run (nothing is written then)."""
        if status not in RUN_TERMINAL:
            raise ValueError(f"not a final run status: {status!r}")
        flat = _flatten(fields or {})
        args: list[Any] = [
            attempt,
            self.ttl,
            self.events_maxlen,
            repr(time.time()),
            _member(job_id, index),
            status,
            error[:2000],
            index,
            len(flat) // 2,
            *flat,
        ]
        if points:
            args.append(_dumps(points))
        out = self._finish(
            keys=[
                _job_key(job_id),
                _run_key(job_id, index),
                _loss_key(job_id, index),
                _events_key(job_id),
                RUNNING_KEY,
                _lease_key(job_id, index),
                _epochs_key(job_id, index),
                _diag_key(job_id, index),
                QUEUED_KEY,
            ],
            args=args,
        )
        return out.decode()

    def append_event(self, job_id: str, event: Mapping[str, Any]) -> None:
        key = _events_key(job_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(key, {"data": _dumps(event)}, maxlen=self.events_maxlen, approximate=True)
        pipe.expire(key, self.ttl)
        pipe.execute()

    def read_events(
        self, job_id: str, last_id: str = "0-0", block_ms: int = 0, count: int = 100
    ) -> list[tuple[str, dict]]:
        """Events after ``last_id`` (``"0-0"`` = from the start), waiting up to ``block_ms``
        (0 = do not wait) for new ones. Returns ``[(stream id, event)]``; raises
        :class:`EventsUnreadableError` when Redis refuses the read."""
        kwargs: dict[str, Any] = {"count": count}
        if block_ms > 0:
            kwargs["block"] = block_ms
        try:
            out = self.redis.xread({_events_key(job_id): last_id}, **kwargs)
        except redis.ResponseError as exc:  # an id Redis cannot take, a key of another type
            raise EventsUnreadableError(str(exc)) from exc
        events: list[tuple[str, dict]] = []
        for _stream, entries in out or []:
            for entry_id, data in entries:
                events.append((entry_id.decode(), orjson.loads(data[b"data"])))
        return events

    # ---------------------------------------------------------------- watchdog and workers

    def running_runs(self) -> list[tuple[str, int]]:
        """``(job_id, run_index)`` of every run marked running."""
        out = []
        for member in self.redis.smembers(RUNNING_KEY):
            job_id, _, index = member.decode().rpartition(":")
            out.append((job_id, int(index)))
        return out

    def requeue_if_orphaned(self, job_id: str, index: int) -> bool:
        """If the run is running but its lease lapsed, mark it queued (True: enqueue it again).
        Atomic, so concurrent watchdogs re-enqueue a run once. The run joins the queued index,
        so it is sent again even if the caller's send fails."""
        now = time.time()
        return bool(
            self._requeue(
                keys=[
                    _job_key(job_id),
                    _run_key(job_id, index),
                    _lease_key(job_id, index),
                    RUNNING_KEY,
                    _events_key(job_id),
                    QUEUED_KEY,
                ],
                args=[
                    _member(job_id, index),
                    self.events_maxlen,
                    index,
                    repr(now),
                    repr(now + self.queued_resend_seconds),
                ],
            )
        )

    def queued_due(self, limit: int = 100) -> list[tuple[str, int]]:
        """``(job_id, run_index)`` of up to ``limit`` queued runs whose resend time passed (a
        range read of the queued index, oldest first)."""
        out = []
        for member in self.redis.zrangebyscore(QUEUED_KEY, "-inf", time.time(), 0, limit):
            job_id, _, index = member.decode().rpartition(":")
            out.append((job_id, int(index)))
        return out

    def resend_if_queued(self, job_id: str, index: int) -> bool:
        """If the run is still queued and due, push its next resend time out (doubling the
        wait each time) and return True: the caller sends it again. Atomic, so concurrent
        watchdogs send a run once; runs no longer queued leave the index."""
        return bool(
            self._resend(
                keys=[_job_key(job_id), _run_key(job_id, index), QUEUED_KEY],
                args=[_member(job_id, index), repr(time.time()), self.queued_resend_seconds],
            )
        )

    def worker_heartbeat(self, hostname: str, seconds: float) -> None:
        """Mark ``hostname`` alive for ``seconds`` (expired heartbeats are pruned)."""
        self._heartbeat(keys=[WORKERS_KEY], args=[hostname, float(seconds)])

    def worker_gone(self, hostname: str) -> None:
        self.redis.zrem(WORKERS_KEY, hostname)

    def live_workers(self) -> list[str]:
        """Hostnames of workers whose heartbeat has not expired (one range read)."""
        return sorted(m.decode() for m in self._live_workers(keys=[WORKERS_KEY]))

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    # ---------------------------------------------------------------- documents

    def _run_doc(
        self,
        index: int,
        raw: Mapping[bytes, bytes],
        chunks: Iterable[bytes] = (),
        epochs: Iterable[bytes] = (),
        diagnostics: Iterable[bytes] = (),
        *,
        with_curves: bool = True,
    ) -> dict:
        g = {k.decode(): v.decode() for k, v in raw.items()}
        steps: list[int] = []
        losses: list[float | None] = []
        for chunk in chunks:
            for step, loss in orjson.loads(chunk):
                steps.append(step)
                losses.append(loss)
        status = g.get("status", "queued")
        doc: dict[str, Any] = {
            "index": index,
            "scheme": int(g.get("scheme", 0)),
            "label": g.get("label"),
            "initializer": g.get("initializer") or None,
            "repeat": int(g.get("repeat", 0)),
            "seed": int(g.get("seed", 0)),
            "status": status,
            "epoch": int(g.get("epoch") or 0),
            "batch": int(g.get("batch") or 0),
            "total_batches": int(g.get("total_batches") or 0),
            "diverged": status == "diverged",
            "attempt": int(g.get("attempt") or 0),
            "requeues": int(g.get("requeues") or 0),
            "worker": g.get("worker") or None,
            "started_at": _iso(g.get("started_at")),
            "finished_at": _iso(g.get("finished_at")),
            "seconds": _finite(g["seconds"]) if g.get("seconds") else None,
            "last_batch_loss": _finite(g["last_batch_loss"]) if g.get("last_batch_loss") else None,
            "final": orjson.loads(g.get("final") or "null"),
            "error": g.get("error") or None,
        }
        if with_curves:
            doc["batch_losses"] = losses
            doc["batch_steps"] = steps
            doc["epochs"] = [orjson.loads(e) for e in epochs]
            doc["diagnostics"] = dict(orjson.loads(d) for d in diagnostics)
            # Runs recorded before the append-only lists kept them in the hash.
            if not doc["epochs"] and g.get("epochs"):
                doc["epochs"] = orjson.loads(g["epochs"])
            if not doc["diagnostics"] and g.get("diagnostics"):
                doc["diagnostics"] = orjson.loads(g["diagnostics"])
        return doc

    def _job_doc(
        self, job_id: str, raw: Mapping[bytes, bytes], runs: list[dict], *, include_runs: bool
    ) -> dict:
        g = {k.decode(): v for k, v in raw.items()}
        spec = orjson.loads(g["spec"])
        total = int(g.get("runs_total", b"0"))
        done = int(g.get("runs_done", b"0"))
        status = g["status"].decode()
        partial = 0.0
        for run in runs:
            if run["status"] == "running" and run["total_batches"]:
                partial += min(1.0, run["batch"] / run["total_batches"])
        fraction = 1.0 if status in TERMINAL else ((done + partial) / total if total else 0.0)
        started = float(g["started_at"]) if g.get("started_at") else None
        eta = None
        if status == "running" and started is not None and fraction > 0:
            eta = max(0.0, (time.time() - started) * (1.0 - fraction) / fraction)
        doc: dict[str, Any] = {
            "id": job_id,
            "status": status,
            "created_at": _iso(g.get("created_at")),
            "started_at": _iso(g.get("started_at")),
            "finished_at": _iso(g.get("finished_at")),
            "progress": {
                "runs_total": total,
                "runs_done": done,
                "fraction": round(min(1.0, fraction), 4),
                "eta_seconds": None if eta is None else round(eta, 1),
            },
            "spec": spec,
            "error": g.get("error", b"").decode() or None,
            "links": {
                "self": f"/v1/jobs/{job_id}",
                "events": f"/v1/jobs/{job_id}/events",
                "report_png": f"/v1/jobs/{job_id}/report.png",
                "report_svg": f"/v1/jobs/{job_id}/report.svg",
                "results_csv": f"/v1/jobs/{job_id}/results.csv",
            },
        }
        if include_runs:
            doc["runs"] = runs
            doc["summary"] = summarize(spec, runs)
        return doc


def summarize(spec: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> list[dict]:
    """One entry per scheme, in request order, over its finished repeats."""
    schemes = spec.get("schemes") or []
    out = []
    for s_index, scheme in enumerate(schemes):
        mine = [r for r in runs if r["scheme"] == s_index]
        finished = [r for r in mine if r["status"] in ("succeeded", "diverged")]
        val_acc, val_loss = [], []
        for r in finished:
            final = r.get("final") or {}
            val_acc.append(_finite(final.get("val_accuracy")))
            val_loss.append(_finite(final.get("val_loss")))
        last = [r.get("last_batch_loss") for r in finished]
        seconds = [r["seconds"] for r in finished if r.get("seconds") is not None]
        diverged = sum(1 for r in mine if r["status"] == "diverged")
        entry: dict[str, Any] = {
            "scheme": s_index,
            "label": scheme.get("label"),
            "initializer": (mine[0].get("initializer") if mine else None),
            "runs": len(mine),
            "runs_finished": len(finished),
            "final_val_accuracy": _stats(val_acc),
            "final_val_loss": _stats(val_loss),
            "last_batch_loss": _stats(last),
            "diverged": diverged,
            "seconds": _stats(seconds)["mean"],
        }
        entry["text"] = _summary_line(entry, finished)
        out.append(entry)
    return out


def _summary_line(entry: Mapping[str, Any], finished: Sequence[Mapping[str, Any]]) -> str:
    """The Udacity helper's line: "After 858 Batches (2 Epochs): Validation Accuracy ..."."""
    batches = max((int(r.get("batch") or 0) for r in finished), default=0)
    epochs = max((int(r["epochs"][-1]["epoch"]) for r in finished if r.get("epochs")), default=0)
    if not epochs:
        epochs = max((int(r.get("epoch") or 0) for r in finished), default=0)
    acc = entry["final_val_accuracy"]["mean"]
    loss = entry["final_val_loss"]["mean"]
    acc_s = "n/a" if acc is None else f"{acc:.3f}"
    loss_s = "n/a" if loss is None else f"{loss:.4f}"
    line = (
        f"{entry['label']}: After {batches} Batches ({epochs} Epochs): "
        f"Validation Accuracy (mean) {acc_s} Loss {loss_s}"
    )
    if entry["diverged"]:
        line += f" ({entry['diverged']} diverged)"
    return line


def _flatten(fields: Mapping[str, Any]) -> list[Any]:
    flat: list[Any] = []
    for key, value in fields.items():
        if isinstance(value, str | int):
            encoded: Any = value
        elif isinstance(value, float):
            encoded = repr(value) if math.isfinite(value) else ""
        else:
            encoded = _dumps(value)
        flat += [key, encoded]
    return flat


def _encode_cursor(score: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{job_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    from app.errors import InvalidInputError

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, job_id = raw.split("|", 1)
        value = float(score)
        if not math.isfinite(value) or not job_id:
            raise ValueError(cursor)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInputError(["query", "cursor"], cursor, "not a cursor from this API") from None
    return value, job_id


def redis_client(url: str | None) -> redis.Redis:
    """A bytes Redis client for ``url`` (default: the local server)."""
    return redis.Redis.from_url(
        url or "redis://127.0.0.1:6379/0", socket_connect_timeout=5, health_check_interval=30
    )
