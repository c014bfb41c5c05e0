"""The Celery instance ``celery_app`` and the watchdog every worker runs.

The app is built by ``app.jobs.queue.make_celery`` (the configuration the API's sending
client shares; see there for acks, limits and the visibility timeout); this module adds the
tasks (``worker.tasks``), the worker's environment defaults and the watchdog. Dependencies
point one way: worker → app.

However the worker is started (plain ``celery -A worker.celery_app worker``, ``initlab run``,
compose), this module sets its performance defaults: ``WORKER_ENV_DEFAULTS`` at import, and on
``worker_init`` (the pool size known, before the pool forks) the BLAS threads per pool process
(:func:`blas_threads`); each pool process logs what its BLAS libraries use.

A worker killed with ``kill -9`` leaves its runs' messages unacknowledged until that (long)
visibility timeout. The watchdog does better: every worker's main process starts a thread on
``worker_ready`` that, every ``INITLAB_WATCHDOG_INTERVAL_SECONDS``, writes the worker's
heartbeat (``/readyz``), re-enqueues every running run whose lease lapsed
(``INITLAB_LEASE_SECONDS``, renewed by the run's worker) and sends again every run still
queued ``INITLAB_QUEUED_RESEND_SECONDS`` after it was sent whose message is gone from the
broker (an API that died between recording a job and sending its runs, a broker error on a
send, a message reserved by a worker that was killed before the run started; the wait doubles
with each resend). A run merely waiting behind others keeps its one message. Both are atomic
Lua transitions, so when several watchdogs see the same run only one sends it; a duplicate
message finds the run claimed or finished and is skipped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from app.config import get_settings
from app.cpus import BLAS_THREAD_VARS, usable_cpus
from app.jobs.queue import make_celery, runs_in_broker, send_run

# Environment defaults of every worker, however it is started (plain ``celery -A
# worker.celery_app worker``, ``initlab run``, compose): set here, before NumPy loads OpenBLAS,
# unless the user set them. Idle OpenBLAS threads otherwise spin for a long while after each
# BLAS call and steal the cores other processes need (on 2 cores: training epochs 5-50x slower).
WORKER_ENV_DEFAULTS: dict[str, str] = {"OPENBLAS_THREAD_TIMEOUT": "4"}

for _name, _value in WORKER_ENV_DEFAULTS.items():
    os.environ.setdefault(_name, _value)


def blas_threads(concurrency: int, configured: int | None = None) -> int:
    """BLAS threads per pool process: ``configured`` (``INITLAB_WORKER_BLAS_THREADS``), else a
    user-set ``OPENBLAS_NUM_THREADS``, else the usable cores (affinity and cgroup quota) shared
    out over the pool, at least 1."""
    if configured is not None:
        return configured
    given = os.environ.get("OPENBLAS_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, usable_cpus() // max(1, concurrency))


def _apply_blas_threads(threads: int) -> None:
    """Tell the BLAS libraries (and the optimizer's ``default_threads``, which reads the same
    variables) to use ``threads``: the environment for what loads later, threadpoolctl for a
    library already loaded."""
    for name in BLAS_THREAD_VARS:
        os.environ[name] = str(threads)
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


log = logging.getLogger("initlab.worker")

celery_app: Celery = make_celery(get_settings(), include=["worker.tasks"])


class Watchdog:
    """Heartbeat, orphaned-run re-enqueueing and resending of runs stuck in ``queued``, on a
    daemon thread of the worker's main process."""

    def __init__(self, hostname: str) -> None:
        from app.jobs.store import JobStore

        self.hostname = hostname
        self.settings = get_settings()
        self.store = JobStore.from_settings(
            self.settings, retries=self.settings.worker_redis_retries
        )
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
        due = self.store.queued_due()
        # A run merely waiting behind others still has its message in the broker: not resent.
        waiting = (
            runs_in_broker(self.store.redis, self.settings.queued_resend_seconds) if due else set()
        )
        for job_id, index in due:
            in_broker = (job_id, index) in waiting
            if self.store.resend_if_queued(job_id, index, in_broker=in_broker):
                sent += self._send(job_id, index, "re-sent", "still queued, its message gone")
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


_blas_threads: int | None = None


@worker_init.connect
def _set_blas_threads_and_warm_up(sender: Any = None, **_: Any) -> None:
    """In the main process, before the pool forks: the BLAS threads per pool process (the
    pool size is known by now) and the compiled initializer and optimizer kernels, so no run
    pays for them."""
    global _blas_threads
    concurrency = getattr(sender, "concurrency", None)
    _blas_threads = blas_threads(
        concurrency if isinstance(concurrency, int) else 1, get_settings().worker_blas_threads
    )
    _apply_blas_threads(_blas_threads)
    from app.initializers import warm_up
    from app.training import warm_up as warm_up_training

    warm_up()
    warm_up_training()


@worker_process_init.connect
def _report_blas_threads(**_: Any) -> None:
    """Each pool process applies the threads again (a BLAS library loaded after the fork) and
    logs what its BLAS libraries really use (threadpoolctl)."""
    if _blas_threads is None:
        return
    _apply_blas_threads(_blas_threads)
    from threadpoolctl import threadpool_info

    libs = ", ".join(
        f"{info.get('internal_api')} {info.get('num_threads')}"
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    )
    env = " ".join(f"{name}={os.environ.get(name)}" for name in WORKER_ENV_DEFAULTS)
    log.info("pool process %d: BLAS threads %d (%s) %s", os.getpid(), _blas_threads, libs, env)


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
