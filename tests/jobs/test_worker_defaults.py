"""Worker defaults: BLAS threads per pool process from the usable cores and the pool size, and
the environment defaults, set by the worker module itself (a worker started the plain Celery
way reports them from every pool process, read by threadpoolctl)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.cpus import cgroup_cpu_limit, usable_cpus

POOL_LINE = re.compile(r"pool process (\d+): BLAS threads (\d+) \(([^)]*)\) (.*)")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_of_the_process_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    write(tmp_path / "cpu.max", "max 100000\n")
    write(tmp_path / "a" / "cpu.max", "150000 100000\n")
    write(tmp_path / "a" / "b" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/a/b\n") == 1.5
    assert cgroup_cpu_limit(tmp_path, "0::/\n") is None


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us", "300000\n")
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, "4:cpu,cpuacct:/\n0::/\n") == 3.0
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(tmp_path, "4:cpu,cpuacct:/\n") is None


def test_blas_threads_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import celery_app

    monkeypatch.setattr(celery_app, "usable_cpus", lambda: 8)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert celery_app.blas_threads(1) == 8
    assert celery_app.blas_threads(3) == 2
    assert celery_app.blas_threads(16) == 1
    assert celery_app.blas_threads(3, configured=5) == 5
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert celery_app.blas_threads(1) == 3
    assert celery_app.blas_threads(1, configured=2) == 2


def pool_lines(worker: Any, count: int, timeout: float = 30.0) -> list[tuple[str, ...]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = POOL_LINE.findall(worker.log())
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no BLAS line from {count} pool processes:\n{worker.describe()}")


@pytest.fixture
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset what the test runner's environment may have set, so the worker's defaults show."""
    for name in (
        "INITLAB_WORKER_BLAS_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_THREAD_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.integration
@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.usefixtures("plain_env")
def test_a_plain_celery_worker_uses_the_cores_over_its_pool(
    start_worker: Callable[..., Any], concurrency: int
) -> None:
    worker = start_worker(concurrency=concurrency)
    expected = max(1, usable_cpus() // concurrency)
    lines = pool_lines(worker, concurrency)
    assert len({pid for pid, *_ in lines}) == concurrency
    for _, threads, libs, env in lines:
        assert int(threads) == expected
        # What the loaded OpenBLAS itself reports (threadpoolctl), not just what we asked.
        assert f"openblas {expected}" in libs, libs
        assert "OPENBLAS_THREAD_TIMEOUT=4" in env


@pytest.mark.integration
@pytest.mark.usefixtures("plain_env")
def test_initlab_worker_blas_threads_still_overrides(start_worker: Callable[..., Any]) -> None:
    worker = start_worker(concurrency=1, env={"INITLAB_WORKER_BLAS_THREADS": "1"})
    ((_, threads, libs, _),) = pool_lines(worker, 1)
    assert threads == "1" and "openblas 1" in libs
