"""Waiting in tests: poll a condition until it holds, bounded by a safety timeout (a net
against a hung process, never a speed assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    *,
    every: float = 0.1,
    retry_on: tuple[type[Exception], ...] = (),
    detail: Callable[[], str] | None = None,
) -> T:
    """Call ``condition`` every ``every`` seconds until it returns something truthy, and return
    that. Exceptions of ``retry_on`` count as "not yet" (the last one is reported); after
    ``timeout`` seconds an AssertionError names ``what`` and adds ``detail()`` if given."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except retry_on as exc:
            last = exc
        time.sleep(every)
    extra = f"\n{detail()}" if detail is not None else ""
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r}){extra}"
    )
