"""BLAS thread limit for the QR of the orthogonal schemes (threadpoolctl).

OpenBLAS's thread count is process-wide: while any QR runs it is held at ``QR_THREADS``
(taken by the first QR, released by the last), so a QR never spreads over the cores the
API's other threads (event loop, chunk fills, other requests) are using. Measured on the
2-core VM: 2 threads make a 2048² QR only 1.5× faster (docs/schemes.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

QR_THREADS = 1
_lock = threading.Lock()
_users = 0
_limit: Any = None
_controller: ThreadpoolController | None = None


def _forget_users() -> None:
    global _lock, _users, _limit
    _lock, _users, _limit = threading.Lock(), 0, None


os.register_at_fork(after_in_child=_forget_users)


@contextmanager
def bounded_blas() -> Iterator[None]:
    """BLAS limited to QR_THREADS threads for the duration (overlapping uses share it)."""
    global _users, _limit, _controller
    with _lock:
        if _users == 0:
            if _controller is None:
                _controller = ThreadpoolController()
            _limit = _controller.limit(limits=QR_THREADS, user_api="blas")
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _limit is not None:
                _limit.restore_original_limits()
                _limit = None


def qr(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.qr(a)`` (reduced) on QR_THREADS BLAS threads."""
    with bounded_blas():
        q, r = np.linalg.qr(a)
    return q, r
