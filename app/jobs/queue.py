"""The task queue: the Celery configuration shared by the API (which only sends) and the
workers (``worker/celery_app.py`` builds its app here), and :func:`send_run`.

Runs are sent by name (:data:`TASK_NAME`, which ``worker/tasks.py`` registers), so the API
never imports the trainer or the worker package. Celery only executes: results live in the
job record (``app.jobs.store``), so the result backend is off. Long runs: tasks are
acknowledged late and rejected when their worker is lost, prefetch is one task per pool
process, and the broker's visibility timeout sits above the hard time limit, so Redis never
redelivers a run that is still going.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from celery import Celery

from app.config import DEFAULT_REDIS_URL, Settings

TASK_NAME = "initlab.train_run"  # the one place the run task's name is spelled
QUEUE = "initlab"
# Seconds between the soft time limit (the run records "failed: over the time limit") and the
# hard one (the pool process is killed).
HARD_LIMIT_MARGIN = 30


def broker_url(settings: Settings) -> str:
    """The broker: the job store's Redis."""
    return settings.redis_url or DEFAULT_REDIS_URL


def make_celery(settings: Settings, *, include: Sequence[str] = ()) -> Celery:
    """A Celery app on ``settings``' broker, configured for initlab's runs."""
    return _build(broker_url(settings), settings.run_time_limit_seconds, tuple(include))


def client(settings: Settings) -> Celery:
    """The sending-only Celery client for ``settings``' broker (one per broker, cached)."""
    return _cached_client(broker_url(settings), settings.run_time_limit_seconds)


def _build(broker: str, soft_limit: int, include: tuple[str, ...]) -> Celery:
    hard = soft_limit + HARD_LIMIT_MARGIN
    app = Celery("initlab", broker=broker, include=list(include))
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=soft_limit,
        task_time_limit=hard,
        # Above the hard limit: a message is redelivered only if its worker vanished and the
        # watchdog did not already send the run again.
        broker_transport_options={"visibility_timeout": hard + 300},
        task_ignore_result=True,
        result_backend=None,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


@lru_cache(maxsize=4)
def _cached_client(broker: str, soft_limit: int) -> Celery:
    return _build(broker, soft_limit, ())


def send_run(job_id: str, index: int, settings: Settings, app: Celery | None = None) -> None:
    """Send one :data:`TASK_NAME` ``(job_id, index)`` task (through ``app``, default
    :func:`client`). Raises the broker's error when it is unreachable."""
    (app or client(settings)).send_task(TASK_NAME, args=[job_id, index], queue=QUEUE)


# Where kombu's Redis transport keeps messages: the queue is a list named QUEUE; a message a
# worker reserved but did not acknowledge is in the UNACKED hash (delivery tag → [message,
# exchange, routing key]) and the UNACKED_INDEX sorted set (delivery tag → when reserved).
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"


def runs_in_broker(client: Any, reserved_within: float) -> set[tuple[str, int]]:
    """``(job_id, run_index)`` of every run message still on its way to a worker: waiting in
    the queue, or reserved by a worker less than ``reserved_within`` seconds ago (an older
    reservation of a run still queued is a message its dead worker took with it). One range
    read of the queue and of the recent reservations; unreadable messages are skipped."""
    found: set[tuple[str, int]] = set()
    payloads: list[Any] = list(client.lrange(QUEUE, 0, -1))
    recent = client.zrangebyscore(UNACKED_INDEX, time.time() - reserved_within, "+inf")
    if recent:
        for raw in client.hmget(UNACKED, recent):
            with contextlib.suppress(ValueError, TypeError, IndexError):
                payloads.append(json.dumps(json.loads(raw)[0]))
    for raw in payloads:
        with contextlib.suppress(ValueError, TypeError, KeyError, IndexError, binascii.Error):
            message = json.loads(raw)
            if message["headers"].get("task") != TASK_NAME:
                continue
            args = json.loads(base64.b64decode(message["body"]))[0]
            found.add((str(args[0]), int(args[1])))
    return found
