"""``compat="keras"``: exactly the calls of Keras 3's NumPy backend
(``keras/src/backend/numpy/random.py``), so the values match Keras's for a seed bit for bit.
The canonical stream is :mod:`app.initializers.sampling`.
"""

from __future__ import annotations

import math

import numpy as np


def rng(seed: int) -> np.random.Generator:
    """``draw_seed(int)`` → ``np.array([seed, 0], uint32)`` → ``default_rng``."""
    return np.random.default_rng(np.array([seed, 0], dtype=np.uint32))


def normal(
    seed: int, shape: tuple[int, ...], mean: float, stddev: float, dtype: np.dtype
) -> np.ndarray:
    gen = rng(seed)
    return np.asarray(gen.normal(size=shape, loc=mean, scale=stddev).astype(dtype))


def uniform(
    seed: int, shape: tuple[int, ...], minval: float, maxval: float, dtype: np.dtype
) -> np.ndarray:
    gen = rng(seed)
    return np.asarray(gen.uniform(size=shape, low=minval, high=maxval).astype(dtype))


def truncated_normal(
    seed: int, shape: tuple[int, ...], mean: float, stddev: float, dtype: np.dtype
) -> np.ndarray:
    gen = rng(seed)
    lower, upper = mean - 2 * stddev, mean + 2 * stddev
    n = math.prod(shape)
    kept: list[np.ndarray] = []
    have = 0
    # Keras appends whole filtered batches of n draws until it has n values.
    while have < n:
        batch = gen.normal(loc=mean, scale=stddev, size=n)
        valid = batch[(batch >= lower) & (batch <= upper)]
        kept.append(valid)
        have += valid.size
    flat = np.concatenate(kept) if kept else np.empty(0)
    return np.asarray(flat[:n].astype(dtype).reshape(shape))
