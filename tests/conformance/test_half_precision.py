"""float16 / bfloat16 uniforms against torch's ``uniform_`` and JAX's ``uniform``: none of
them returns the excluded upper bound; initlab's largest value is the largest number of the
dtype below it, as torch's is, and JAX's (drawn in the dtype's own mantissa) is no larger."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
from jax.nn import initializers as jinit

from app.initializers import generate, resolve

pytestmark = pytest.mark.conformance

SHAPE = (1000, 1000)  # float32 draws within 2^-12 (f16) / 2^-9 (bf16) of 1 round up to 1
DTYPES = {
    "float16": (np.float16, torch.float16, jnp.float16),
    "bfloat16": (ml_dtypes.bfloat16, torch.bfloat16, jnp.bfloat16),
}


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_half_precision_uniform_maxima_match_torch_and_jax(dtype: str) -> None:
    numpy_type, torch_type, jax_type = DTYPES[dtype]
    below_one = float(np.nextafter(numpy_type(1.0), numpy_type(0.0)))
    theirs = torch.empty(SHAPE, dtype=torch_type)
    torch.manual_seed(0)
    torch.nn.init.uniform_(theirs, 0.0, 1.0)
    torch_max = theirs.float().max().item()
    jax_max = float(np.asarray(jinit.uniform(1.0)(jax.random.key(0), SHAPE, jax_type)).max())
    for ref in (
        {"name": "jax.nn.initializers.uniform", "params": {"scale": 1.0}},
        {"name": "torch.nn.init.uniform_", "params": {"a": 0.0, "b": 1.0}},
        {"name": "random_uniform", "params": {"minval": -1.0, "maxval": 1.0}},
    ):
        ours = generate(resolve(ref), SHAPE, seed=1, dtype=dtype).astype(np.float64)
        assert ours.max() == below_one == torch_max, ref
        assert jax_max <= ours.max() < 1.0, ref
