"""How many CPUs this process may really use: its affinity mask, capped by the cgroup CPU quota.

``os.cpu_count()`` counts the machine's CPUs; a container limited by ``--cpus`` (cgroup
``cpu.max`` in v2, ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` in v1) or pinned by
``taskset`` / ``--cpuset-cpus`` (the affinity mask) may use fewer. Standard library only, so
any layer may import it (the worker's BLAS threads, the optimizer's threads).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["BLAS_THREAD_VARS", "cgroup_cpu_limit", "usable_cpus"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The variables that set how many threads the BLAS libraries NumPy may load use: the worker
# sets them per pool process, the trainer reads them back as its thread count.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota(quota: str | None, period: str | None) -> float | None:
    """CPUs a quota/period pair allows (None: unlimited or unreadable)."""
    if quota is None or period is None or quota in ("max", "-1"):
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _own_cgroups(proc_cgroup: str | None) -> dict[str, str]:
    """``/proc/self/cgroup`` as ``{controller: path}`` (``""`` for the v2 unified line)."""
    out: dict[str, str] = {}
    for line in (proc_cgroup or "").splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        for name in controllers.split(",") if controllers else [""]:
            out[name] = path
    return out


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup and its ancestors, in CPUs (the smallest one
    found), or None when there is none. ``proc_cgroup``: the text of ``/proc/self/cgroup``
    (read when None)."""
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    own = _own_cgroups(proc_cgroup)
    limits: list[float] = []
    # v2: cpu.max ("quota period" or "max period") in the process's cgroup and every ancestor.
    v2 = Path(own.get("", "/").lstrip("/"))
    for rel in [v2, *v2.parents]:
        text = _read(root / rel / "cpu.max")
        if text:
            parts = text.split()
            limit = _quota(parts[0], parts[1] if len(parts) > 1 else None)
            if limit is not None:
                limits.append(limit)
    # v1: the cpu controller's mount (a container sees its own cgroup at the mount root).
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = root / mount
        for rel in {Path("."), Path(own.get("cpu", "/").lstrip("/"))}:
            limit = _quota(
                _read(base / rel / "cpu.cfs_quota_us"), _read(base / rel / "cpu.cfs_period_us")
            )
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def usable_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by the cgroup quota rounded up
    (a 1.5-CPU quota keeps 2 threads busy part of the time); at least 1."""
    n = _affinity()
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, math.ceil(limit))
    return max(1, n)
