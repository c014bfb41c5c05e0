"""Celery tasks: thin wrappers, ids in → ``app.jobs.reporter.execute_run``."""

from __future__ import annotations

from celery import Task

from app.config import get_settings
from app.jobs.queue import TASK_NAME
from app.jobs.reporter import execute_run
from app.jobs.store import JobStore
from worker.celery_app import celery_app

_store: JobStore | None = None


def _job_store() -> JobStore:
    global _store
    if _store is None:  # one connection pool per pool process, created after the fork
        _store = JobStore.from_settings(retries=get_settings().worker_redis_retries)
    return _store


@celery_app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
def train_run(self: Task, job_id: str, run_index: int) -> str:
    """Train run ``run_index`` of job ``job_id`` and record it (idempotent)."""
    return execute_run(_job_store(), job_id, int(run_index), str(self.request.hostname))
