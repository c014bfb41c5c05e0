"""Random draws for the canonical stream and for ``compat="keras"``.

Canonical stream. Everything starts from one ``np.random.Generator`` (PCG64, built by
``np.random.default_rng(seed)``) passed in explicitly. A flat buffer of n elements is cut into
fixed chunks of ``CHUNK`` elements; chunk 0 draws from the generator itself, chunk k from
``Generator(rng.bit_generator.jumped(k))``. Chunks are independent, so they are filled on a
thread pool (NumPy releases the GIL), and the bytes depend only on (seed, n), never on the
number of threads.

- float32 normals: Box–Muller on float32 uniforms, z = sqrt(-2 ln(1-u1))·cos(2π u2) and the
  matching sine (the construction of PyTorch's CPU ``normal_``; |z| ≤ 5.77). float64 normals:
  NumPy's ziggurat ``standard_normal``.
- uniforms: ``Generator.random`` in the drawing dtype, then low + (high-low)·u.
- truncated normals: the normal draw with vectorized rejection outside [lo, hi] and a refill
  loop until the chunk is full.

Keras compat (``keras_*``): exactly the calls of Keras 3's NumPy backend
(``keras/src/backend/numpy/random.py``) so the bytes match bit for bit.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK = 1 << 16
_TWO_PI = np.float32(2.0 * math.pi)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _reset_pool() -> None:
    # A forked child (a Celery worker) inherits the pool object but not its threads.
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_reset_pool)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="initlab-draw"
            )
        return _pool


def _jumped(rng: np.random.Generator, k: int) -> np.random.BitGenerator:
    bit_generator = rng.bit_generator
    if not isinstance(bit_generator, np.random.PCG64):
        raise TypeError("the canonical stream needs a PCG64 generator (np.random.default_rng)")
    return bit_generator.jumped(k)


def _run_chunked(
    rng: np.random.Generator, n: int, fill: Callable[[np.random.Generator, int, int], None]
) -> None:
    """Call ``fill(generator, start, stop)`` for every chunk of [0, n)."""
    if n <= CHUNK:
        fill(rng, 0, n)
        return
    count = -(-n // CHUNK)
    # Every chunk's generator is derived before any draw advances ``rng``.
    generators = [rng] + [np.random.Generator(_jumped(rng, k)) for k in range(1, count)]
    tasks = [(generators[k], k * CHUNK, min(n, (k + 1) * CHUNK)) for k in range(count)]
    if (os.cpu_count() or 1) == 1:
        for task in tasks:
            fill(*task)
        return
    for future in [_executor().submit(fill, *task) for task in tasks]:
        future.result()


def normal_acceptance(lo: float, hi: float) -> float:
    """P(lo ≤ Z ≤ hi) for a standard normal Z."""
    return 0.5 * (math.erf(hi / math.sqrt(2.0)) - math.erf(lo / math.sqrt(2.0)))


def _normal_into(gen: np.random.Generator, out: np.ndarray, std: float) -> None:
    """out ← N(0, std²) (Box–Muller for float32, ziggurat for float64)."""
    m = out.size
    if out.dtype == np.float64:
        gen.standard_normal(m, dtype=np.float64, out=out)
        if std != 1.0:
            out *= std
        return
    h = (m + 1) // 2
    u = gen.random(2 * h, dtype=np.float32)
    radius, theta = u[:h], u[h:]
    np.subtract(np.float32(1.0), radius, out=radius)  # (0, 1]: log stays finite
    np.log(radius, out=radius)
    radius *= np.float32(-2.0 * std * std)  # std folded into the radius: no extra pass
    np.sqrt(radius, out=radius)
    theta *= _TWO_PI
    np.cos(theta, out=out[:h])
    out[:h] *= radius
    rest = m - h
    if rest:
        np.sin(theta[:rest], out=out[h:])
        out[h:] *= radius[:rest]


def fill_normal(rng: np.random.Generator, out: np.ndarray, mean: float, std: float) -> None:
    """out ← N(mean, std²); ``out`` is a flat float32/float64 buffer."""
    shift = out.dtype.type(mean)

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        _normal_into(gen, view, std)
        if mean != 0.0:
            view += shift

    _run_chunked(rng, out.size, fill)


def fill_uniform(rng: np.random.Generator, out: np.ndarray, low: float, high: float) -> None:
    """out ← U[low, high)."""
    width, shift = out.dtype.type(high - low), out.dtype.type(low)

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        gen.random(view.size, dtype=out.dtype, out=view)
        view *= width
        if low != 0.0:
            view += shift

    _run_chunked(rng, out.size, fill)


def fill_truncated_normal(
    rng: np.random.Generator,
    out: np.ndarray,
    mean: float,
    std: float,
    lo: float,
    hi: float,
) -> None:
    """out ← mean + std·Z with Z a standard normal restricted to [lo, hi] (σ units).

    The chunk is drawn whole; the positions outside [lo·std, hi·std] are then redrawn, in
    order, from further draws of the same generator until none is left.
    """
    acceptance = max(normal_acceptance(lo, hi), 1e-12)
    low, high = out.dtype.type(lo * std), out.dtype.type(hi * std)
    shift = out.dtype.type(mean)

    def outside(values: np.ndarray) -> np.ndarray:
        return np.asarray((values < low) | (values > high))

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        _normal_into(gen, view, std)
        todo = np.flatnonzero(outside(view))
        while todo.size:
            batch = np.empty(min(int(todo.size / acceptance * 1.1) + 32, 1 << 22), out.dtype)
            _normal_into(gen, batch, std)
            kept = batch[~outside(batch)][: todo.size]
            view[todo[: kept.size]] = kept
            todo = todo[kept.size :]
        if mean != 0.0:
            view += shift

    _run_chunked(rng, out.size, fill)


def draw_dtype(dtype: np.dtype) -> np.dtype:
    """float64 targets draw in float64; every other float target draws float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


# --- Keras 3 NumPy backend, call for call -------------------------------------------------


def keras_rng(seed: int) -> np.random.Generator:
    """``draw_seed(int)`` → ``np.array([seed, 0], uint32)`` → ``default_rng``."""
    return np.random.default_rng(np.array([seed, 0], dtype=np.uint32))


def keras_normal(
    seed: int, shape: tuple[int, ...], mean: float, stddev: float, dtype: np.dtype
) -> np.ndarray:
    rng = keras_rng(seed)
    return np.asarray(rng.normal(size=shape, loc=mean, scale=stddev).astype(dtype))


def keras_uniform(
    seed: int, shape: tuple[int, ...], minval: float, maxval: float, dtype: np.dtype
) -> np.ndarray:
    rng = keras_rng(seed)
    return np.asarray(rng.uniform(size=shape, low=minval, high=maxval).astype(dtype))


def keras_truncated_normal(
    seed: int, shape: tuple[int, ...], mean: float, stddev: float, dtype: np.dtype
) -> np.ndarray:
    rng = keras_rng(seed)
    lower, upper = mean - 2 * stddev, mean + 2 * stddev
    n = math.prod(shape)
    kept: list[np.ndarray] = []
    have = 0
    # Keras appends whole filtered batches of n draws until it has n values.
    while have < n:
        batch = rng.normal(loc=mean, scale=stddev, size=n)
        valid = batch[(batch >= lower) & (batch <= upper)]
        kept.append(valid)
        have += valid.size
    flat = np.concatenate(kept) if kept else np.empty(0)
    return np.asarray(flat[:n].astype(dtype).reshape(shape))
