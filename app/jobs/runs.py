"""The worker side of the job record: claiming a run, its lease, progress and finish writes,
the cancel flag, and the watchdog's and workers' registry (each one Lua script or one read).

:class:`RunStore` holds the Redis connection and the registered scripts; ``JobStore``
(``app.jobs.store``) extends it with the API side (create, read, list, cancel, reports).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from app.jobs import scripts
from app.jobs.documents import dumps
from app.jobs.keys import (
    QUEUED_KEY,
    RUNNING_KEY,
    WORKERS_KEY,
    cancel_key,
    checkpoint_key,
    job_key,
    parse_member,
    script_keys,
)
from app.jobs.keys import member as run_member
from app.jobs.status import FINISHED

# What a run's progress or checkpoint write answers (:meth:`RunStore.update_run`,
# :meth:`RunStore.save_checkpoint`): written, carry on; written, but the job was cancelled;
# refused, the run was cancelled (nothing written: the attempt's points go with its finish);
# refused, another attempt owns the run or it ended.
WRITTEN, WRITTEN_CANCELLED, REFUSED_CANCELLED, STALE = 0, 1, 2, -1


class RunClaim:
    """The outcome of :meth:`JobStore.claim_run`: ``state`` is ``ok`` (``attempt`` is valid),
    ``gone`` (job expired), ``terminal`` (job finished or cancelled), ``done`` (this run already
    finished) or ``busy`` (another live worker holds the run's lease). ``resumed``: the run
    has a checkpoint to carry on from (:meth:`RunStore.get_checkpoint`); its lists were cut
    back to what they held then. ``published_step`` / ``published_epoch``: how far earlier
    attempts published the run in the job's event stream (every batch-loss point below that
    step, every epoch record up to that epoch), which a new attempt does not publish again."""

    __slots__ = ("attempt", "published_epoch", "published_step", "resumed", "state", "token")

    def __init__(
        self,
        state: str,
        attempt: int,
        token: str,
        resumed: bool = False,
        published_step: int = 0,
        published_epoch: int = 0,
    ) -> None:
        self.state = state
        self.attempt = attempt
        self.token = token
        self.resumed = resumed
        self.published_step = published_step
        self.published_epoch = published_epoch

    @property
    def ok(self) -> bool:
        return self.state == "ok"


class RunStore:
    """Run records as workers write them. Thread-safe (a ``redis.Redis`` pool)."""

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
        self._claim = client.register_script(scripts.CLAIM)
        self._update = client.register_script(scripts.UPDATE)
        self._save_checkpoint = client.register_script(scripts.SAVE_CHECKPOINT)
        self._discard_checkpoint = client.register_script(scripts.DISCARD_CHECKPOINT)
        self._finish = client.register_script(scripts.FINISH)
        self._cancel = client.register_script(scripts.CANCEL)
        self._requeue = client.register_script(scripts.REQUEUE)
        self._renew = client.register_script(scripts.RENEW)
        self._resend = client.register_script(scripts.RESEND)
        self._keep_report = client.register_script(scripts.KEEP_REPORT)
        self._prune_index = client.register_script(scripts.PRUNE_INDEX)
        self._heartbeat = client.register_script(scripts.HEARTBEAT)
        self._live_workers = client.register_script(scripts.LIVE_WORKERS)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job was cancelled (or has expired): one ``EXISTS`` of two keys."""
        # 1 = the job exists without a cancel flag; 2 = cancelled; 0 = expired.
        return int(self.redis.exists(cancel_key(job_id), job_key(job_id))) != 1

    # ---------------------------------------------------------------- runs (worker side)

    def claim_run(self, job_id: str, index: int, worker: str, lease_seconds: float) -> RunClaim:
        """Start (or restart) run ``index`` under a new attempt number: from its checkpoint if
        it has one (``resumed``), else with its record reset."""
        state, attempt, resumed, *published = self._claim(
            keys=script_keys(job_id, index),
            args=[
                worker,
                int(lease_seconds * 1000),
                repr(time.time()),
                self.ttl,
                run_member(job_id, index),
                self.events_maxlen,
                index,
            ],
        )
        attempt = int(attempt)
        step, epoch = (int(n) for n in published) if published else (0, 0)
        token = f"{worker}#{attempt}"
        return RunClaim(state.decode(), attempt, token, bool(int(resumed)), step, epoch)

    def save_checkpoint(
        self,
        job_id: str,
        index: int,
        attempt: int,
        data: bytes,
        *,
        step: int,
        epoch: int,
        epochs_done: int,
    ) -> int:
        """Keep ``data`` as the run's checkpoint (with the lengths of its lists now). Returns
        :data:`WRITTEN`, :data:`WRITTEN_CANCELLED`, :data:`REFUSED_CANCELLED` or :data:`STALE`."""
        return int(
            self._save_checkpoint(
                keys=script_keys(job_id, index),
                args=[attempt, self.ttl, data, step, epoch, epochs_done],
            )
        )

    def get_checkpoint(self, job_id: str, index: int) -> bytes | None:
        """The run's checkpoint bytes, if it has one."""
        data: bytes | None = self.redis.hget(checkpoint_key(job_id, index), "data")
        return data

    def discard_checkpoint(self, job_id: str, index: int, attempt: int) -> bool:
        """Drop a checkpoint the attempt cannot use and reset the run's lists (False: stale)."""
        return bool(self._discard_checkpoint(keys=script_keys(job_id, index), args=[attempt]))

    def renew_lease(self, job_id: str, index: int, token: str, lease_seconds: float) -> bool:
        """Extend the run's lease if ``token`` still holds it."""
        return bool(
            self._renew(keys=script_keys(job_id, index), args=[token, int(lease_seconds * 1000)])
        )

    def update_run(
        self,
        job_id: str,
        index: int,
        attempt: int,
        *,
        seq: int = 0,
        fields: Mapping[str, Any] | None = None,
        points: Sequence[tuple[int, float]] = (),
        events: Sequence[Mapping[str, Any]] = (),
        epochs: Sequence[Mapping[str, Any]] = (),
        diagnostics: Sequence[tuple[str, Any]] = (),
    ) -> int:
        """Write progress of a running run: hash ``fields`` (JSON-encoded when not scalar),
        new batch-loss ``points``, new epoch records, new ``(when, layers)`` diagnostics
        snapshots (all appended) and ``events`` (in order). ``seq``: this write's number within
        the
        attempt, from 1 (a retried write already applied changes nothing; 0: not numbered).
        Returns :data:`WRITTEN` (carry on), :data:`WRITTEN_CANCELLED`,
        :data:`REFUSED_CANCELLED` (nothing written: hand the points to :meth:`finish_run`) or
        :data:`STALE` (another attempt owns the run, or it ended; nothing written)."""
        flat = _flatten(fields or {})
        args: list[Any] = [
            attempt,
            self.ttl,
            self.events_maxlen,
            seq,
            len(events),
            *(dumps(event) for event in events),
            len(flat) // 2,
            *flat,
            *_records(epochs, diagnostics, points),
        ]
        return int(
            self._update(
                keys=script_keys(job_id, index),
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
        epochs: Sequence[Mapping[str, Any]] = (),
        diagnostics: Sequence[tuple[str, Any]] = (),
        error: str = "",
    ) -> str:
        """Record a run's end (``succeeded`` | ``diverged`` | ``failed`` | ``cancelled``),
        with its last ``fields``, ``points``, epoch records and diagnostics snapshots (as
        :meth:`update_run`) and, when it was the last one, the job's final status. Returns the
        run's recorded status, or ``stale`` when this attempt no longer owns the run (nothing
        is written then). A cancelled run's finish writes once: a retried one writes nothing."""
        if status not in FINISHED:
            raise ValueError(f"not a final run status: {status!r}")
        flat = _flatten(fields or {})
        args: list[Any] = [
            attempt,
            self.ttl,
            self.events_maxlen,
            repr(time.time()),
            run_member(job_id, index),
            status,
            error[:2000],
            index,
            len(flat) // 2,
            *flat,
            *_records(epochs, diagnostics, points),
        ]
        out = self._finish(
            keys=script_keys(job_id, index),
            args=args,
        )
        return out.decode()

    # ---------------------------------------------------------------- watchdog and workers

    def running_runs(self) -> list[tuple[str, int]]:
        """``(job_id, run_index)`` of every run marked running."""
        return [parse_member(raw) for raw in self.redis.smembers(RUNNING_KEY)]

    def requeue_if_orphaned(self, job_id: str, index: int) -> bool:
        """If the run is running but its lease lapsed, mark it queued (True: enqueue it again).
        Atomic, so concurrent watchdogs re-enqueue a run once. The run joins the queued index,
        so it is sent again even if the caller's send fails."""
        now = time.time()
        return bool(
            self._requeue(
                keys=script_keys(job_id, index),
                args=[
                    run_member(job_id, index),
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
        due = self.redis.zrangebyscore(QUEUED_KEY, "-inf", time.time(), 0, limit)
        return [parse_member(raw) for raw in due]

    def resend_if_queued(self, job_id: str, index: int, *, in_broker: bool = False) -> bool:
        """If the run is still queued and due, push its next resend time out (doubling the
        wait each time) and return True: the caller sends it again. ``in_broker``: its message
        is still waiting (``app.jobs.queue.runs_in_broker``): only look again
        ``queued_resend_seconds`` later (False). Atomic, so concurrent watchdogs send a run
        once; runs no longer queued leave the index."""
        return bool(
            self._resend(
                keys=script_keys(job_id, index),
                args=[
                    run_member(job_id, index),
                    repr(time.time()),
                    self.queued_resend_seconds,
                    "1" if in_broker else "0",
                ],
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


def _flatten(fields: Mapping[str, Any]) -> list[Any]:
    flat: list[Any] = []
    for key, value in fields.items():
        if isinstance(value, str | int):
            encoded: Any = value
        elif isinstance(value, float):
            encoded = repr(value) if math.isfinite(value) else ""
        else:
            encoded = dumps(value)
        flat += [key, encoded]
    return flat


def _records(
    epochs: Sequence[Mapping[str, Any]],
    diagnostics: Sequence[tuple[str, Any]],
    points: Sequence[tuple[int, float]],
) -> list[Any]:
    """The ARGV tail of UPDATE and FINISH: counted epoch records and diagnostics snapshots,
    then the points as one loss chunk (none without points)."""
    args: list[Any] = [len(epochs), *(dumps(record) for record in epochs)]
    args += [len(diagnostics), *(dumps([when, layers]) for when, layers in diagnostics)]
    if points:
        args.append(dumps(points))
    return args
