"""How much a request makes a real server process grow, read from ``/proc/<pid>/status``.

``/proc/<pid>/clear_refs`` (``5``) resets the peak RSS (``VmHWM``) to the current RSS before
the request, so ``VmHWM`` after it minus ``VmRSS`` before is the most the process held beyond
what it held already: a memory bound, not a timing one. Linux only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def growth_bytes(pid: int, request: Callable[[], T]) -> tuple[T, int]:
    """(what ``request()`` returned, how far process ``pid``'s peak RSS rose above its RSS
    while it ran, in bytes)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kib(pid, "VmRSS")
    result = request()
    return result, (status_kib(pid, "VmHWM") - before) * 1024
