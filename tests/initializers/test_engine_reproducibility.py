"""The canonical stream's bytes do not depend on NumPy's SIMD dispatch or on the thread pool."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy._core import _multiarray_umath as umath

from app.initializers import generate, resolve, sampling

# Shapes above and below sampling.SMALL (Box–Muller chunks / ziggurat), odd sizes included.
CASES: list[tuple[str, tuple[int, ...], str]] = [
    ("kaiming_normal", (3, 3), "float32"),
    ("random_normal", (301, 257), "float32"),
    ("he_normal", (1000, 131), "float32"),
    ("trunc_normal", (3, 3, 64, 128), "float32"),
    ("glorot_uniform", (784, 256), "float32"),
    ("xavier_normal", (999, 77), "bfloat16"),
    ("torch_normal", (512, 300), "float64"),
    ("orthogonal", (64, 32), "float32"),
]


def digests() -> dict[str, str]:
    out = {}
    for name, shape, dtype in CASES:
        values = generate(resolve(name), shape, seed=2024, dtype=dtype)
        out[f"{name}{shape}{dtype}"] = hashlib.sha256(values.tobytes()).hexdigest()
    return out


def _dispatched_features() -> list[str]:
    """CPU features NumPy dispatches to on this machine beyond its compiled baseline."""
    found = umath.__cpu_features__
    return [f for f in umath.__cpu_dispatch__ if found.get(f)]


def _child(env_extra: dict[str, str]) -> dict[str, object]:
    here = os.path.dirname(__file__)
    root = os.path.dirname(os.path.dirname(here))
    script = (
        "import json, sys; sys.path[:0] = sys.argv[1:3];"
        "from numpy._core import _multiarray_umath as u;"
        "from test_engine_reproducibility import digests;"
        "print(json.dumps({'digests': digests(),"
        " 'enabled': [f for f in u.__cpu_dispatch__ if u.__cpu_features__.get(f)]}))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, here, root],
        capture_output=True, text=True, check=True, env={**os.environ, **env_extra},
    )
    result: dict[str, object] = json.loads(child.stdout)
    return result


def test_bytes_do_not_depend_on_simd_dispatch() -> None:
    features = _dispatched_features()
    if not features:
        pytest.skip("NumPy dispatches to no CPU feature beyond its baseline on this machine")
    restricted = _child({"NPY_DISABLE_CPU_FEATURES": " ".join(features)})
    assert restricted["enabled"] == []  # the child really ran NumPy's baseline kernels
    assert restricted["digests"] == digests()


def test_the_operations_the_stream_uses_are_correctly_rounded() -> None:
    # The construction uses only correctly rounded operations; check that each of them agrees
    # with float64 arithmetic rounded once, on values where float32 log/sin would not be exact.
    rng = np.random.default_rng(0)
    a = rng.random(10_000, dtype=np.float32) + np.float32(0.5)
    b = rng.random(10_000, dtype=np.float32) + np.float32(0.5)
    wide_a, wide_b = a.astype(np.float64), b.astype(np.float64)
    assert np.array_equal(a * b, (wide_a * wide_b).astype(np.float32))
    assert np.array_equal(a / b, (wide_a / wide_b).astype(np.float32))
    assert np.array_equal(a + b, (wide_a + wide_b).astype(np.float32))
    assert np.array_equal(np.sqrt(a), np.sqrt(wide_a).astype(np.float32))


def test_box_muller_is_within_3_ulp_of_the_exact_transform() -> None:
    gen = sampling.seeded(5)
    pairs = 1 << 14
    out = np.empty(2 * pairs, np.float32)
    state = gen.bit_generator.state
    sampling._box_muller(gen, out, 1.0)
    gen.bit_generator.state = state
    words = gen.bit_generator.random_raw(pairs).view(np.uint32)
    a, b = words[:pairs], words[pairs:]
    radius = np.sqrt(-2.0 * np.log(((a >> 8).astype(np.float64) + 1.0) / 2.0**24))
    v = b.view(np.int32) >> 8
    first = (v.astype(np.float32) * sampling._ANGLE).astype(np.float64)
    second = ((2**23 - np.abs(v)).astype(np.float32) * sampling._ANGLE).astype(np.float64)
    sign = np.where(b & 1, -1.0, 1.0)
    exact = np.concatenate([radius * np.sin(first), sign * radius * np.sin(second)])
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(out - exact) / ulp) <= 3.0


def test_distinct_seeds_give_distinct_pcg_streams() -> None:
    increments = {sampling.seeded(seed).bit_generator.state["state"]["inc"] for seed in range(2000)}
    assert len(increments) == 2000
    first = sampling.seeded(7).standard_normal(8, dtype=np.float32)
    assert not np.array_equal(first, sampling.seeded(8).standard_normal(8, dtype=np.float32))


def test_chunk_bounds_cover_the_buffer_in_even_pairs() -> None:
    for n in (sampling.SMALL + 1, 73_728, 200_704, 1_000_001, 4096 * 4096):
        bounds = sampling.chunk_bounds(n)
        assert len(bounds) % 2 == 0
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(stop == nxt for (_, stop), (nxt, _) in itertools.pairwise(bounds))
        assert all((stop - start) % 2 == 0 for start, stop in bounds[:-1])
        sizes = [stop - start for start, stop in bounds]
        assert max(sizes) - min(sizes) <= 3


def test_generate_reseeds_the_thread_generator_on_every_call() -> None:
    init = resolve("he_normal")
    expected = generate(init, (40, 30), seed=3).tobytes()
    outer = sampling.seeded(99)
    generate(init, (20, 20), seed=4)  # re-seeds this thread's generator
    assert generate(init, (40, 30), seed=3).tobytes() == expected
    assert outer is sampling.seeded(99)  # the same per-thread object, re-seeded on each call
