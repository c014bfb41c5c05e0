"""The Celery instance ``celery_app`` and the watchdog every worker runs.

Celery only executes: results live in the job record (``app.jobs.store``), so the result
backend is off. Long runs: tasks are acknowledged late and rejected when their worker is lost,
prefetch is one task per pool process, and the broker's visibility timeout sits above the hard
time limit, so Redis never redelivers a run that is still going.

A worker killed with ``kill -9`` leaves its runs' messages unacknowledged until that (long)
visibility timeout. The watchdog does better: every worker's main process starts a thread on
``worker_ready`` that, every ``INITLAB_WATCHDOG_INTERVAL_SECONDS``, writes the worker's
heartbeat (``/readyz``) and re-enqueues every running run whose lease lapsed
(``INITLAB_LEASE_SECONDS``, renewed by the run's worker). The re-enqueue is an atomic Lua
transition (running → queued), so when several watchdogs see the same orphan only one sends it
again; the original message, if Redis ever restores it, finds the run finished and is skipped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from app.config import get_settings


def _limit_blas_threads() -> None:
    """One BLAS thread per pool process by default: the pool already spreads runs over the
    cores, and OpenBLAS threads competing for busy cores slow a run down many times over
    (see bench/results/jobs.md). Only effective before NumPy is first imported."""
    if "numpy" in sys.modules:
        return
    threads = str(get_settings().worker_blas_threads)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)


_limit_blas_threads()

log = logging.getLogger("initlab.worker")

QUEUE = "initlab"
# Seconds between the soft time limit (the run records "failed: over the time limit") and the
# hard one (the pool process is killed).
HARD_LIMIT_MARGIN = 30


def _broker_url() -> str:
    return get_settings().redis_url or "redis://127.0.0.1:6379/0"


def make_celery() -> Celery:
    limits = get_settings()
    soft = limits.run_time_limit_seconds
    hard = soft + HARD_LIMIT_MARGIN
    app = Celery("initlab", broker=_broker_url(), include=["worker.tasks"])
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=soft,
        task_time_limit=hard,
        # Above the hard limit: a message is redelivered only if its worker vanished and the
        # watchdog did not already re-enqueue the run.
        broker_transport_options={"visibility_timeout": hard + 300},
        task_ignore_result=True,
        result_backend=None,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


celery_app = make_celery()


class Watchdog:
    """Heartbeat + orphaned-run re-enqueueing, on a daemon thread of the worker's main process."""

    def __init__(self, hostname: str) -> None:
        from app.jobs.store import JobStore

        self.hostname = hostname
        self.store = JobStore.from_settings()
        self.settings = get_settings()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="initlab-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.store.worker_gone(self.hostname)
        except Exception:
            log.warning("could not remove the heartbeat of %s", self.hostname)

    def _loop(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # Redis blip: keep watching
                log.exception("watchdog tick failed")
            if self._stop.wait(self.settings.watchdog_interval_seconds):
                return

    def tick(self) -> int:
        """One pass: heartbeat, then re-enqueue orphaned runs. Returns how many were sent."""
        ttl = max(
            self.settings.worker_heartbeat_seconds, 2 * self.settings.watchdog_interval_seconds
        )
        self.store.worker_heartbeat(self.hostname, ttl)
        sent = 0
        for job_id, index in self.store.running_runs():
            if self.store.requeue_if_orphaned(job_id, index):
                celery_app.send_task("initlab.train_run", args=[job_id, index])
                log.warning("re-enqueued run %d of %s (its worker's lease lapsed)", index, job_id)
                sent += 1
        return sent


_watchdog: Watchdog | None = None


@worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    global _watchdog
    hostname = getattr(sender, "hostname", None) or "worker"
    _watchdog = Watchdog(hostname)
    _watchdog.start()


@worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    if _watchdog is not None:
        _watchdog.stop()
