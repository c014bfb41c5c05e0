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

from collections.abc import Sequence
from functools import lru_cache

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
