"""Orthogonal QR runs on a fixed number of BLAS threads and restores the process's setting."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from app.initializers import generate, resolve
from app.initializers.blas import QR_THREADS, bounded_blas


def _blas_threads() -> set[int]:
    return {int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_qr_holds_blas_at_qr_threads_and_restores_it() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before == {2}
        with bounded_blas():
            assert _blas_threads() == {QR_THREADS}
        assert _blas_threads() == before


def test_orthogonal_generation_leaves_blas_threads_unchanged() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        q = generate(resolve("orthogonal"), (300, 200), seed=4, dtype="float64")
        assert _blas_threads() == {2}
    np.testing.assert_allclose(q.T @ q, np.eye(200), atol=1e-12)
