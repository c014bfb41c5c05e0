"""``generate``: validate, compute fans, draw from an explicit generator, cast."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from app.initializers.base import Initializer, check_seed, check_shape, numpy_dtype
from app.initializers.errors import InitializerError
from app.initializers.fans import layout_fans


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
    Canonical stream: ``np.random.default_rng(seed)``; ``compat="keras"``: Keras 3's NumPy
    backend for that seed, bit for bit.
    """
    init.check(shape, dtype=dtype, layout=layout, fan_in=fan_in, fan_out=fan_out, compat=compat)
    seed = check_seed(seed)
    dims = check_shape(shape)
    if init.uses_fans:
        fans = init.fans_for(dims, layout, fan_in, fan_out)
    else:
        try:
            fans = init.fans_for(dims, layout, fan_in, fan_out)
        except InitializerError:
            fans = layout_fans(dims, "keras")
    target = numpy_dtype(dtype)
    if math.prod(dims) == 0:
        return np.zeros(dims, dtype=target)
    if compat == "keras":
        values = init.sample_keras(seed, dims, fans, target)
    else:
        values = init.sample(np.random.default_rng(seed), dims, fans, target)
    if values.dtype != target:
        values = values.astype(target)
    if values.shape != dims:
        raise AssertionError(f"{init.name} produced {values.shape} for {dims}")
    return values if values.flags.c_contiguous else np.ascontiguousarray(values)
