"""The trainer's threads: one shared pool, and how many threads a run may use.

NumPy releases the GIL inside BLAS calls and ufuncs, so the trainer runs independent pieces of
work (the row blocks of a batch, the parts of an optimizer step) on threads of one process
with single-threaded BLAS (:func:`single_threaded_blas`): a handful of hand-offs per batch
instead of OpenBLAS's own threads, which wake up for every call and, on a shared machine,
made a small matmul slower with two threads than with one. How work is split never depends
on the thread count, so results do not either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from app.cpus import BLAS_THREAD_VARS, usable_cpus

__all__ = ["MAX_THREADS", "default_threads", "run_all", "single_threaded_blas"]

MAX_THREADS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _reset_pool() -> None:
    """In a forked child: it has none of the parent's threads, and the lock may have been held
    by one of them at the fork."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_pool)


def default_threads() -> int:
    """Threads a run uses: as many as BLAS was given (``OPENBLAS_NUM_THREADS`` /
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` if set: the worker sets them to its share of the
    cores), else the CPUs this process may use (affinity and cgroup quota, ``app.cpus``)."""
    for var in BLAS_THREAD_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return min(int(value), MAX_THREADS)
    return min(usable_cpus(), MAX_THREADS)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_THREADS - 1, thread_name_prefix="initlab-train")
        return _pool


class _Batch:
    """One :func:`run_all` call: tasks claimed in order by whichever thread asks first."""

    def __init__(self, tasks: Sequence[Callable[[], None]]) -> None:
        self.tasks = tasks
        self.next = 0
        self.left = len(tasks)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.done = threading.Event()

    def drain(self) -> None:
        while True:
            with self.lock:
                i = self.next
                if i >= len(self.tasks):
                    return
                self.next += 1
            try:
                self.tasks[i]()
            except BaseException as exc:  # re-raised by the caller of run_all
                with self.lock:
                    self.error = self.error or exc
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.done.set()


def run_all(tasks: Sequence[Callable[[], None]], threads: int) -> None:
    """Run every task, on up to ``threads`` threads (the caller's among them); returns when all
    are done and re-raises the first error.

    The caller's thread takes tasks too, and takes them all if the pool's threads are slow to
    start (a busy or oversubscribed machine): it never waits for a thread that has not begun a
    task, only for tasks under way."""
    if threads <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    batch = _Batch(tasks)
    pool = _executor()
    for _ in range(min(threads, len(tasks)) - 1):
        pool.submit(batch.drain)
    batch.drain()
    batch.done.wait()
    if batch.error is not None:
        raise batch.error


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread in this process for the duration (threadpoolctl), then as before.

    The limit is process-wide, not per thread: right for the worker's prefork pool, where each
    process runs one run at a time, but two runs on threads of one process would share it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
