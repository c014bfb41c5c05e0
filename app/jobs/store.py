"""The job record in Redis: the only module that reads or writes the ``initlab:`` keys
(:mod:`app.jobs.keys` names them, :mod:`app.jobs.scripts` holds the Lua transitions,
:mod:`app.jobs.documents` builds the api.md documents from what is read).

Jobs and uploads record their owner (the caller id, ``app.api.auth``; :data:`ANONYMOUS`
without API keys). Reads given an ``owner`` treat another owner's record as unknown.

Status transitions are Lua scripts, so they are atomic across API processes and workers
(:mod:`app.jobs.status` has the statuses). Writes are O(1) per report: batch losses, epoch
records and diagnostics are appended (RPUSH) and assembled on read, never rewritten. A
finished job's rendered report is kept with it (:meth:`JobStore.keep_report`).
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.config import DEFAULT_REDIS_URL
from app.jobs.documents import dumps as _dumps
from app.jobs.documents import job_doc, run_doc, summarize
from app.jobs.documents import text as _s
from app.jobs.keys import (
    INDEX_KEY,
    JOB_KEY_PREFIX,
    QUEUED_KEY,
    diag_key,
    epochs_key,
    events_key,
    job_key,
    loss_key,
    owner_jobs_key,
    prune_call,
    report_key,
    run_key,
    script_keys,
)
from app.jobs.keys import cancel_channel as cancel_channel
from app.jobs.keys import (
    member as run_member,
)
from app.jobs.runs import RunClaim, RunStore
from app.jobs.status import RunStatus, is_finished

__all__ = [
    "ANONYMOUS",
    "STORE_ERRORS",
    "EventsUnreadableError",
    "JobStore",
    "RunClaim",
    "cancel_channel",
    "is_finished",
    "new_job_id",
    "redis_client",
    "summarize",
]

# The owner of jobs and uploads made without an API key (authentication off), and of records
# written before owners were recorded.
ANONYMOUS = "anonymous"
# What a store call raises when Redis cannot be reached (callers that must not let it out,
# such as a response already streaming, catch these).
STORE_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


def new_job_id() -> str:
    """A fresh job id (``job_<24 hex>``)."""
    return "job_" + secrets.token_hex(12)


def owner_of(stored: bytes | None) -> str:
    """The owner a record's stored owner field names (records without one are anonymous)."""
    return _s(stored) or ANONYMOUS


def owned(stored: bytes | None, owner: str | None) -> bool:
    """Whether a record whose owner field is ``stored`` is visible to ``owner`` (None: anyone)."""
    return owner is None or owner_of(stored) == owner


class EventsUnreadableError(Exception):
    """Redis refused to read a job's event stream from the given position."""


class JobStore(RunStore):
    """Create, read, list and cancel job records (the worker side: :class:`RunStore`).
    Thread-safe (a ``redis.Redis`` pool)."""

    # How many index ids one list_jobs call looks at, at most (a page of a filter few jobs
    # match ends there, with a cursor): bounded work per request.
    LIST_SCAN_IDS = 500

    @classmethod
    def from_settings(cls, settings: Any = None, *, retries: int | None = None) -> JobStore:
        """A store on ``settings``' Redis (default: :func:`app.config.get_settings`), with
        its TTL, stream length and resend time; ``retries``: connection errors are retried
        that many times with backoff (the workers'; see :func:`redis_client`)."""
        from app.config import get_settings

        settings = settings or get_settings()
        return cls(
            redis_client(settings.redis_url, retries=retries),
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
        pipe.hset(
            job_key(job_id),
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
                "runs_cancelled": 0,
                "error": "",
                "writes": 0,
            },
        )
        for i, run in enumerate(runs):
            pipe.hset(
                run_key(job_id, i),
                mapping={
                    "scheme": int(run["scheme"]),
                    "label": str(run["label"]),
                    "initializer": str(run.get("initializer", "")),
                    "repeat": int(run["repeat"]),
                    "seed": int(run["seed"]),
                    "total_batches": int(run.get("total_batches", 0)),
                    "status": RunStatus.QUEUED.value,
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
            pipe.expire(run_key(job_id, i), self.ttl)
        # Sent right after this by the caller; if that never happens (the API died, the
        # broker failed), the watchdog sends them once this time has passed.
        resend_at = now + self.queued_resend_seconds
        pipe.zadd(QUEUED_KEY, {run_member(job_id, i): resend_at for i in range(len(runs))})
        events = events_key(job_id)
        pipe.xadd(
            events,
            {"data": b'{"type":"status","status":"queued"}'},
            maxlen=self.events_maxlen,
            approximate=True,
        )
        pipe.expire(job_key(job_id), self.ttl)
        pipe.expire(events, self.ttl)
        pipe.zadd(INDEX_KEY, {job_id: now})
        pipe.zadd(owner_jobs_key(owner), {job_id: now})
        pipe.expire(owner_jobs_key(owner), self.ttl)
        pipe.execute()
        self.prune_index(now)
        doc = self.get_job(job_id)
        assert doc is not None
        return doc

    def prune_index(self, now: float) -> int:
        """Drop a few ids of expired jobs from ``initlab:jobs`` (:data:`PRUNE_PER_CREATE`,
        bounded work; every create calls it). Returns how many went."""
        keys, args = prune_call(INDEX_KEY, JOB_KEY_PREFIX, now - self.ttl)
        return int(self._prune_index(keys=keys, args=args))

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(job_key(job_id)))

    def get_status(self, job_id: str) -> str | None:
        """The job's status, or None for an unknown or expired id."""
        return _s(self.redis.hget(job_key(job_id), "status"))

    def get_spec(self, job_id: str) -> dict | None:
        raw = self.redis.hget(job_key(job_id), "spec")
        return None if raw is None else orjson.loads(raw)

    def get_run(self, job_id: str, index: int) -> dict | None:
        """One run's document (as in :meth:`get_job`), or None."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(run_key(job_id, index))
        self._queue_curves(pipe, job_id, index)
        raw, *curves = pipe.execute()
        return run_doc(index, raw, *curves) if raw else None

    @staticmethod
    def _queue_curves(pipe: Any, job_id: str, index: int) -> None:
        """Queue the reads of a run's append-only lists (loss chunks, epochs, diagnostics)."""
        pipe.lrange(loss_key(job_id, index), 0, -1)
        pipe.lrange(epochs_key(job_id, index), 0, -1)
        pipe.lrange(diag_key(job_id, index), 0, -1)

    def get_job(
        self, job_id: str, *, include_runs: bool = True, owner: str | None = None
    ) -> dict | None:
        """The api.md job document, or None for an unknown or expired id (or, given
        ``owner``, a job of another owner)."""
        read = self.get_job_writes(job_id, include_runs=include_runs, owner=owner)
        return None if read is None else read[0]

    def get_job_writes(
        self, job_id: str, *, include_runs: bool = True, owner: str | None = None
    ) -> tuple[dict, int] | None:
        """:meth:`get_job` and the job's write counter (``writes``, bumped by every write that
        may follow its final status: a run's finish, the cancel) as read with the job's hash,
        before its runs: a document rendered from this read is as new as that count, or newer."""
        raw = self.redis.hgetall(job_key(job_id))
        if not raw or not owned(raw.get(b"owner"), owner):
            return None
        n = int(raw.get(b"runs_total", b"0"))
        pipe = self.redis.pipeline(transaction=False)
        for i in range(n):
            pipe.hgetall(run_key(job_id, i))
            if include_runs:
                self._queue_curves(pipe, job_id, i)
        out = pipe.execute()
        per_run = 4 if include_runs else 1
        runs: list[dict] = []
        for i in range(n):
            rraw, *curves = out[per_run * i : per_run * (i + 1)]
            if rraw:
                runs.append(run_doc(i, rraw, *curves, with_curves=include_runs))
        doc = job_doc(job_id, raw, runs, include_runs=include_runs, now=time.time())
        return doc, int(raw.get(b"writes") or 0)

    def list_jobs(
        self,
        limit: int = 20,
        cursor: str | None = None,
        *,
        owner: str | None = None,
        statuses: Collection[str] | None = None,
    ) -> tuple[list[dict], str | None]:
        """Jobs newest first (``owner``'s only, if given; with one of ``statuses``, if given):
        ``(brief documents, next cursor or None)``.

        The cursor is opaque (the last item's creation time and id), so a filtered page goes on
        after the last job it returned; ``next_cursor`` is None when no further job matches.
        One call looks at up to :attr:`LIST_SCAN_IDS` ids: a filter few jobs match then ends
        the page early, with fewer than ``limit`` jobs and a cursor at the last id looked at.
        Expired ids are pruned from the index as they are met.
        """
        index = INDEX_KEY if owner is None else owner_jobs_key(owner)
        limit = max(1, min(int(limit), 100))
        max_score: float | str = "+inf"
        after: str | None = None
        if cursor:
            max_score, after = _decode_cursor(cursor)
        found: list[tuple[float, dict]] = []
        offset = 0
        budget = self.LIST_SCAN_IDS
        seen: tuple[float, str] | None = None  # the last id looked at
        while len(found) <= limit and budget > 0:
            page = self.redis.zrevrangebyscore(
                index, max_score, "-inf", start=offset, num=min(limit + 16, budget), withscores=True
            )
            if not page:
                break
            offset += len(page)
            budget -= len(page)
            ids = [raw_id.decode() for raw_id, _ in page]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(job_key(job_id), "status")
            for job_id, (_, score), status in zip(ids, page, pipe.execute(), strict=True):
                seen = (score, job_id)
                # Equal scores come in reverse lexicographic order: skip up to the cursor item.
                if after is not None and score == max_score and job_id >= after:
                    continue
                if statuses is not None and status is not None and _s(status) not in statuses:
                    continue  # without reading the document
                doc = None if status is None else self.get_job(job_id, include_runs=False)
                if doc is None:  # expired: prune the index
                    self.redis.zrem(index, job_id)
                    offset -= 1
                    continue
                # The status may have moved on since the check: the document's is the one sent.
                if statuses is not None and doc["status"] not in statuses:
                    continue
                found.append((score, doc))
                if len(found) > limit:
                    break
        next_cursor = None
        if len(found) > limit:
            score, last = found[limit - 1]
            next_cursor = _encode_cursor(score, last["id"])
        elif budget <= 0 and seen is not None:  # out of budget: go on after the last id seen
            next_cursor = _encode_cursor(*seen)
        return [doc for _, doc in found[:limit]], next_cursor

    # ---------------------------------------------------------------- cancel

    def cancel_job(self, job_id: str, *, owner: str | None = None) -> str | None:
        """Cancel a queued or running job. Returns the status it had before (None: unknown,
        or given ``owner``, another owner's job).

        The cancel is published on :func:`cancel_channel`: a running run stops at its first
        batch check after its worker learns of it (docs/api.md); the flag
        (:meth:`cancel_requested`) stays for runs that start later, and their later writes are
        ignored.
        """
        n, stored_owner = self.redis.hmget(job_key(job_id), ["runs_total", "owner"])
        if n is None or not owned(stored_owner, owner):
            return None
        keys = script_keys(job_id) + [run_key(job_id, i) for i in range(int(n))]
        before = self._cancel(
            keys=keys, args=[repr(time.time()), self.ttl, self.events_maxlen, job_id]
        )
        self.redis.publish(cancel_channel(job_id), b"1")
        return None if before is None else _s(before)

    # ---------------------------------------------------------------- kept reports

    def kept_report(
        self, job_id: str, fmt: str, *, owner: str | None = None
    ) -> tuple[bytes, int] | None:
        """The report kept for the finished job (:meth:`keep_report`) and the job's write
        counter it was rendered at, or None (none kept, or the job is unknown, expired or,
        given ``owner``, another's)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(job_key(job_id), "owner")
        pipe.hmget(report_key(job_id), [fmt, "writes"])
        stored_owner, (data, writes) = pipe.execute()
        if data is None or not owned(stored_owner, owner):
            return None
        return bytes(data), int(writes or 0)

    def keep_report(self, job_id: str, fmt: str, data: bytes, writes: int) -> bool:
        """Keep a finished job's report, rendered from a read at write counter ``writes``
        (:meth:`get_job_writes`), until the job expires (its remaining TTL). False (nothing
        kept) when the job is not finished, or a run wrote since that read (a cancelled run's
        last points): the rendering may be stale. Such a write drops a kept report too."""
        return bool(self._keep_report(keys=script_keys(job_id), args=[fmt, data, writes]))

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
            out = self.redis.xread({events_key(job_id): last_id}, **kwargs)
        except redis.ResponseError as exc:  # an id Redis cannot take, a key of another type
            raise EventsUnreadableError(str(exc)) from exc
        events: list[tuple[str, dict]] = []
        for _stream, entries in out or []:
            for entry_id, data in entries:
                events.append((entry_id.decode(), orjson.loads(data[b"data"])))
        return events

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False


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


def redis_client(url: str | None, *, retries: int | None = None) -> redis.Redis:
    """A bytes Redis client for ``url`` (default: the local server). ``retries``: a command
    that meets a connection error or timeout is sent again up to that many times, waiting
    0.05 s, doubling to at most 2 s (a worker riding out a Redis restart; the writes it
    retries are idempotent). None: redis-py's default (a few quick retries)."""
    if retries is None:
        return redis.Redis.from_url(
            url or DEFAULT_REDIS_URL, socket_connect_timeout=5, health_check_interval=30
        )
    return redis.Redis.from_url(
        url or DEFAULT_REDIS_URL,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
