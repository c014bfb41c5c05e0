"""``generate``: validate (memoised), compute fans, draw from an explicit generator, cast."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.initializers import sampling
from app.initializers.base import SEED_MAX, Initializer, check_seed


def generate(
    init: Initializer,
    shape: Sequence[int],
    *,
    seed: int,
    dtype: str = "float32",
    layout: str = "keras",
    fan_in: int | None = None,
    fan_out: int | None = None,
    compat: str | None = None,
) -> np.ndarray:
    """Draw a C-contiguous tensor of ``shape`` from ``init``.

    The same (init, shape, seed, dtype, layout, fans, compat) always gives the same bytes.
    Canonical stream: ``sampling.seeded(seed)`` (PCG64DXSM keyed by BLAKE2b, see
    ``app.initializers.sampling``); ``compat="keras"``: Keras 3's NumPy backend for that seed,
    bit for bit.
    """
    plan = init.plan(shape, dtype, layout, fan_in, fan_out, compat)
    if type(seed) is not int or not 0 <= seed <= SEED_MAX:
        seed = check_seed(seed)
    dims, fans, target = plan.dims, plan.fans, plan.dtype
    if plan.size == 0:
        return np.zeros(dims, dtype=target)
    if compat == "keras":
        values = init.sample_keras(seed, dims, fans, target)
    else:
        values = init.sample(sampling.seeded(seed), dims, fans, target)
    if values.dtype != target:
        values = values.astype(target)
    if values.shape != dims:
        raise AssertionError(f"{init.name} produced {values.shape} for {dims}")
    return values if values.flags.c_contiguous else np.ascontiguousarray(values)
