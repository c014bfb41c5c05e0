"""The trainer's thread pool across a fork (the worker's prefork pool forks after warm-up)."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from app.cpus import BLAS_THREAD_VARS
from app.training import parallel


def _run_two_tasks(out: multiprocessing.Queue[list[str]]) -> None:
    names: list[str] = []
    lock = threading.Lock()

    def task() -> None:
        with lock:
            names.append(threading.current_thread().name)

    parallel.run_all([task] * 4, threads=2)
    out.put(names)


def test_a_child_forked_while_the_pool_lock_is_held_gets_a_pool_of_its_own() -> None:
    parallel.run_all([lambda: None] * 2, threads=2)  # the parent has a pool and its threads
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[list[str]] = context.Queue()
    with parallel._pool_lock:  # as if a parent's thread were inside _executor() at the fork
        child = context.Process(target=_run_two_tasks, args=(out,))
        child.start()
    child.join(timeout=120)  # a safety bound: the child deadlocks on a copied, held lock
    if child.exitcode is None:
        child.kill()
        child.join()
    assert child.exitcode == 0
    assert len(out.get(timeout=10)) == 4


def test_the_trainer_reads_the_variables_the_worker_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BLAS_THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(BLAS_THREAD_VARS[-1], "3")
    assert parallel.default_threads() == 3
