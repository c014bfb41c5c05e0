"""The canonical stream's bytes do not depend on NumPy's SIMD dispatch, on the CPU the float32
kernels are compiled for, or on the thread pool; the float32 normals are standard normals."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from numpy._core import _multiarray_umath as umath

from app.initializers import generate, resolve, sampling, ziggurat

M64 = (1 << 64) - 1

# Shapes above and below sampling.SMALL (chunks / one draw), odd sizes included.
CASES: list[tuple[str, tuple[int, ...], str]] = [
    ("kaiming_normal", (3, 3), "float32"),
    ("random_normal", (301, 257), "float32"),
    ("random_normal", (1001, 263), "float32"),
    ("he_normal", (513, 511), "float32"),
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
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env_extra},
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


def test_bytes_do_not_depend_on_the_cpu_the_kernels_are_compiled_for(tmp_path: Path) -> None:
    # A child compiles the Numba kernels afresh for a baseline x86-64 / generic CPU (no AVX,
    # no FMA, no gathers) instead of this machine's; every tensor must come out the same.
    generic = _child({"NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path)})
    assert generic["digests"] == digests()


def test_kernels_draw_exactly_numpys_pcg64dxsm_words() -> None:
    gen = np.random.PCG64DXSM(12345)
    inner = gen.state["state"]
    state = np.array(
        [inner["state"] & M64, inner["state"] >> 64, inner["inc"] & M64, inner["inc"] >> 64],
        np.uint64,
    )
    words = np.empty(100_003, np.uint64)
    ziggurat.draw(state, words)
    assert np.array_equal(words, gen.random_raw(100_003))
    after = gen.state["state"]["state"]
    assert (int(state[0]), int(state[1])) == (after & M64, after >> 64)


@pytest.mark.parametrize("bounds", [(-math.inf, math.inf), (-2.0, 2.0)], ids=["normal", "cut"])
@pytest.mark.parametrize("n", [1, 2, 9, 1_001, 3 * ziggurat.BLOCK + 1, 70_000, sampling.SMALL])
def test_keyed_and_plain_generators_give_the_same_bytes_and_state(
    n: int, bounds: tuple[float, float]
) -> None:
    # The kernels advance a KeyedGenerator's state in place; a plain Generator's state is
    # copied out and written back. Same values, and the generator ends in the same state.
    key = sampling._pcg_key(77, 0, sampling._SEED_KEY)
    keyed = sampling.KeyedGenerator().key(key)
    assert keyed.state_words is not None  # the in-place path is the one under test
    plain = np.random.Generator(np.random.PCG64DXSM(0))
    plain.bit_generator.state = keyed.bit_generator.state
    a, b = np.empty(n, np.float32), np.empty(n, np.float32)
    sampling._ziggurat(keyed, a, 0.3, *bounds)
    sampling._ziggurat(plain, b, 0.3, *bounds)
    assert np.array_equal(a, b)
    assert keyed.bit_generator.random_raw() == plain.bit_generator.random_raw()


def test_kernels_refuse_a_generator_that_is_not_pcg64dxsm() -> None:
    with pytest.raises(TypeError, match="PCG64DXSM"):
        sampling._ziggurat(np.random.Generator(np.random.PCG64(0)), np.empty(4, np.float32), 1.0)


def test_keying_in_place_equals_keying_through_the_state_dict() -> None:
    key = sampling._pcg_key(5, 3, sampling._CHUNK_KEY)
    in_place = sampling.KeyedGenerator()
    in_place.random(7, dtype=np.float32)  # leaves a buffered 32-bit half behind
    in_place.key(key)
    by_dict = sampling.KeyedGenerator()
    by_dict._by_dict(key)
    assert in_place.bit_generator.state == by_dict.bit_generator.state
    assert in_place.bit_generator.state["has_uint32"] == 0


def test_more_words_for_second_attempts_do_not_change_the_bytes() -> None:
    # When the padded words run out, the kernel runs again with more: the same prefix of the
    # stream, so the same values as with ample words from the start.
    n = 100_000
    stream = np.random.PCG64DXSM(7).random_raw(n // 2 + 20_000)
    short, ample = np.empty(n, np.float32), np.empty(n, np.float32)
    inf = math.inf
    assert not ziggurat.fill(stream[: n // 2 + 2], short, 1.0, -inf, inf, n)
    assert ziggurat.fill(stream, ample, 1.0, -inf, inf, n)
    assert ziggurat.fill(stream[: n // 2 + 8_000], short, 1.0, -inf, inf, n)
    assert np.array_equal(short, ample)
    # Truncated to [-2, 2]: far more second attempts, the same rule.
    assert not ziggurat.fill(stream[: n // 2 + 1_000], short, 1.0, -2.0, 2.0, n)
    assert ziggurat.fill(stream, ample, 1.0, -2.0, 2.0, n)
    assert ziggurat.fill(stream[: n // 2 + 19_000], short, 1.0, -2.0, 2.0, n)
    assert np.array_equal(short, ample) and np.abs(ample).max() <= 2.0


@pytest.mark.parametrize(("lo", "hi"), [(-2.0, 2.0), (-0.5, 1.5), (2.5, 5.0), (-6.0, -1.0)])
def test_float32_truncated_normals_follow_the_truncated_normal(lo: float, hi: float) -> None:
    # The ziggurat refuses attempts outside [lo, hi] itself (float32); against scipy.
    init = resolve({"name": "trunc_normal", "params": {"mean": 0.0, "std": 1.0, "a": lo, "b": hi}})
    values = generate(init, (1 << 19,), seed=21).astype(np.float64)
    assert values.min() >= lo and values.max() <= hi
    assert scipy.stats.kstest(values, scipy.stats.truncnorm(lo, hi).cdf).pvalue > 1e-3


def test_float32_normals_follow_the_standard_normal() -> None:
    # 2**22 draws against scipy's normal: KS, the tail beyond R (drawn by Marsaglia's method)
    # and equal-probability bins (chi-square); the sample's moments.
    values = generate(resolve("torch_normal"), (1 << 22,), seed=11).astype(np.float64)
    assert scipy.stats.kstest(values, "norm").pvalue > 1e-3
    n = values.size
    for cut in (1.0, 2.0, 3.0, ziggurat.R, 4.5):
        expected = 2 * scipy.stats.norm.sf(cut) * n
        assert abs(np.count_nonzero(np.abs(values) > cut) - expected) < 5 * math.sqrt(expected)
    edges = scipy.stats.norm.ppf(np.linspace(0, 1, 1001))
    counts = np.histogram(values, edges)[0]
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    assert abs(values.mean()) < 5 / math.sqrt(n)
    assert abs(values.std() - 1.0) < 5 / math.sqrt(2 * n)
    assert np.abs(values).max() <= ziggurat.PEAK
    assert np.count_nonzero(values > 0) == pytest.approx(n / 2, abs=5 * math.sqrt(n) / 2)


def test_ln_series_matches_the_logarithm() -> None:
    x = np.concatenate([np.linspace(2**-24, 1.0, 10_001), [2**-24, 0.5, 2**-0.5, 1.0]])
    got = np.array([ziggurat._ln(float(v)) for v in x])
    np.testing.assert_allclose(got, np.log(x), rtol=1e-15, atol=1e-16)


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


def test_ziggurat_layers_have_equal_areas() -> None:
    # Marsaglia & Tsang's construction: every layer i ≥ 1 covers X[i]·(f(X[i+1]) − f(X[i])) = V,
    # the base layer R·f(R) plus the tail beyond R (scipy's normal tail, unnormalised).
    x = ziggurat.W.astype(np.float64) * 2**23
    f = ziggurat.F
    areas = x[1:-1] * (f[2:-1] - f[1:-2])
    np.testing.assert_allclose(areas, ziggurat.V, rtol=1e-6)
    assert x[255] * (f[256] - f[255]) == pytest.approx(ziggurat.V, rel=1e-6)  # the top layer
    tail = math.sqrt(2 * math.pi) * scipy.stats.norm.sf(ziggurat.R)
    assert ziggurat.R * f[1] + tail == pytest.approx(ziggurat.V, rel=1e-9)
    # Acceptance of a first attempt: K[j] / 2²³ = X[j+1] / X[j] (rounded down; X from float32
    # W here, so to within two steps), whole numbers; the top layer accepts nothing at once.
    np.testing.assert_allclose(ziggurat.K[:-1] / 2**23, x[1:] / x[:-1], atol=2 * 2**-23)
    assert np.array_equal(ziggurat.K, np.floor(ziggurat.K)) and ziggurat.K[255] == 0


def test_ziggurat_tables_are_pinned() -> None:
    # The tables come from IEEE-754 double operations only (no C library exp/log), so they are
    # the same on every machine. Their bytes define every float32 normal: a change here must
    # come with a new ETAG_VERSION in app/api/routes/tensors.py.
    tables = ziggurat.W.tobytes() + ziggurat.K.tobytes() + ziggurat.F.tobytes()
    assert hashlib.sha256(tables).hexdigest() == (
        "5ed2d1a616dd88db838c0ed610871fe6ed776468c75a1d8e692d977eda548efc"
    )
    x = np.linspace(-60.0, 0.0, 10_001)
    got = np.array([ziggurat._exp(float(v)) for v in x])
    np.testing.assert_allclose(got, np.exp(x), rtol=2e-15)
