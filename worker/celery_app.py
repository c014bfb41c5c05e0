"""The Celery instance ``celery_app`` and the watchdog every worker runs.

The app is built by ``app.jobs.queue.make_celery`` (the configuration the API's sending
client shares; see there for acks, limits and the visibility timeout); this module adds the
tasks (``worker.tasks``) and the watchdog. Dependencies point one way: worker → app.

A worker killed with ``kill -9`` leaves its runs' messages unacknowledged until that (long)
visibility timeout. The watchdog does better: every worker's main process starts a thread on
``worker_ready`` that, every ``INITLAB_WATCHDOG_INTERVAL_SECONDS``, writes the worker's
heartbeat (``/readyz``), re-enqueues every running run whose lease lapsed
(``INITLAB_LEASE_SECONDS``, renewed by the run's worker) and sends again every run still
queued ``INITLAB_QUEUED_RESEND_SECONDS`` after it was sent (an API that died between recording
a job and sending its runs, a broker error on a send, a message lost with a killed worker
before the run started; the wait doubles with each resend). Both are atomic Lua transitions,
so when several watchdogs see the same run only one sends it; a duplicate message finds the
run claimed or finished and is skipped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

from app.config import get_settings
from app.jobs.queue import make_celery, send_run


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

celery_app: Celery = make_celery(get_settings(), include=["worker.tasks"])


class Watchdog:
    """Heartbeat, orphaned-run re-enqueueing and resending of runs stuck in ``queued``, on a
    daemon thread of the worker's main process."""

    def __init__(self, hostname: str) -> None:
        from app.jobs.store import JobStore

        self.hostname = hostname
        self.settings = get_settings()
        self.store = JobStore.from_settings(self.settings)
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
        """One pass: heartbeat, re-enqueue orphaned runs, resend runs queued for too long.
        Returns how many were sent. A failed send is logged: the run stays in the queued index
        and is sent again by a later pass."""
        ttl = max(
            self.settings.worker_heartbeat_seconds, 2 * self.settings.watchdog_interval_seconds
        )
        self.store.worker_heartbeat(self.hostname, ttl)
        sent = 0
        for job_id, index in self.store.running_runs():
            if self.store.requeue_if_orphaned(job_id, index):
                sent += self._send(job_id, index, "re-enqueued", "its worker's lease lapsed")
        for job_id, index in self.store.queued_due():
            if self.store.resend_if_queued(job_id, index):
                sent += self._send(job_id, index, "re-sent", "still queued")
        return sent

    def _send(self, job_id: str, index: int, what: str, why: str) -> int:
        try:
            send_run(job_id, index, self.settings, celery_app)
        except Exception:
            log.exception("could not send run %d of %s; the watchdog retries", index, job_id)
            return 0
        log.warning("%s run %d of %s (%s)", what, index, job_id, why)
        return 1


_watchdog: Watchdog | None = None


@worker_init.connect
def _warm_up_kernels(**_: Any) -> None:
    """Load the compiled initializer kernels once in the main process, before the pool forks,
    so no run pays for it."""
    from app.initializers import warm_up

    warm_up()


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
