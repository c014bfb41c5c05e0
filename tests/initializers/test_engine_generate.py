"""Every scheme × shape × dtype: shape, dtype, layout in memory, determinism, statistics."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from initializer_cases import BY_NAME, NAMES, cases, shapes_for

from app.initializers import compute_fans, generate, resolve

DTYPE = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "int32": np.int32,
}


@pytest.mark.parametrize(("name", "shape", "dtype"), cases())
def test_generate_returns_requested_shape_dtype_and_is_deterministic(
    name: str, shape: tuple[int, ...], dtype: str
) -> None:
    init = resolve(name)
    first = generate(init, shape, seed=1234, dtype=dtype)
    assert first.shape == shape
    assert first.dtype == np.dtype(DTYPE[dtype])
    assert first.flags.c_contiguous
    assert np.isfinite(first.astype(np.float64)).all()
    again = generate(resolve(name), list(shape), seed=1234, dtype=dtype)
    assert first.tobytes() == again.tobytes()
    if BY_NAME[name]["random"] and math.prod(shape) > 4:
        other = generate(init, shape, seed=1235, dtype=dtype)
        assert first.tobytes() != other.tobytes()


@pytest.mark.parametrize("name", [n for n in NAMES if BY_NAME[n]["random"]])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_the_float32_draw_cast(name: str, dtype: str) -> None:
    init = resolve(name)
    shape = shapes_for(name)[-1]
    wide = generate(init, shape, seed=7, dtype="float32")
    assert (
        generate(init, shape, seed=7, dtype=dtype).tobytes() == wide.astype(DTYPE[dtype]).tobytes()
    )


@pytest.mark.parametrize("name", ["zeros", "he_normal", "orthogonal", "dirac", "eye"])
def test_empty_shapes_give_empty_arrays(name: str) -> None:
    shape = (0, 4, 3) if name == "dirac" else (0, 5)
    out = generate(resolve(name), shape, seed=0)
    assert out.shape == shape and out.size == 0


# Schemes, a non-default parameter set, and what the values must satisfy.
STAT_SHAPE = (400, 500)
ZERO_MEAN = {
    "random_uniform",
    "random_normal",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "trunc_normal",
    "sparse",
    "torch_orthogonal",
    "torch_default",
    "general_rule",
    "small_random",
    "large_random",
    "jax_normal",
    "jax_truncated_normal",
}


@pytest.mark.parametrize("name", [n for n in NAMES if BY_NAME[n]["random"]])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sample_std_matches_expected_std(name: str, dtype: str) -> None:
    init = resolve(name)
    # Orthogonal schemes pay for a QR: their std is exact by construction at any size.
    shape = {
        "delta_orthogonal": (3, 5, 40, 60),
        "orthogonal": (120, 150),
        "torch_orthogonal": (150, 120),
    }.get(name, STAT_SHAPE)
    values = generate(init, shape, seed=99, dtype=dtype).astype(np.float64)
    fan_in, fan_out = compute_fans(shape)
    expected = init.expected_std(fan_in, fan_out, shape=shape)
    assert expected is not None and expected > 0
    assert values.std() == pytest.approx(expected, rel=0.03)
    if name in ZERO_MEAN:
        assert abs(values.mean()) < 0.02 * expected


@pytest.mark.parametrize(
    ("ref", "low", "high"),
    [
        ("random_uniform", -0.05, 0.05),
        ({"name": "random_uniform", "params": {"minval": 0.0, "maxval": 2.0}}, 0.0, 2.0),
        ("truncated_normal", -0.1, 0.1),
        ({"name": "trunc_normal", "params": {"std": 1.0, "a": -0.5, "b": 1.5}}, -0.5, 1.5),
        ({"name": "jax_truncated_normal", "params": {"lower": 0.0, "upper": 3.0}}, 0.0, 0.03),
        ("jax_uniform", 0.0, 0.01),
        ("general_rule", -1 / math.sqrt(400), 1 / math.sqrt(400)),
        ("glorot_uniform", -math.sqrt(6 / 900), math.sqrt(6 / 900)),
        (
            "he_normal",
            -2 * math.sqrt(2 / 400) / 0.87962566103423978,
            2 * math.sqrt(2 / 400) / 0.87962566103423978,
        ),
    ],
)
def test_values_stay_within_the_scheme_bounds(ref: object, low: float, high: float) -> None:
    values = generate(resolve(ref), STAT_SHAPE, seed=3, dtype="float64")  # type: ignore[arg-type]
    assert values.min() >= low - 1e-12 and values.max() <= high + 1e-12
    # The bounds are reached closely: the whole range is used.
    assert values.min() < low + 0.02 * (high - low) and values.max() > high - 0.02 * (high - low)


def test_keras_truncated_normal_is_uncorrected() -> None:
    values = generate(resolve("truncated_normal"), (1000, 1000), seed=0)
    assert values.std() == pytest.approx(0.0440, abs=0.0002)


def test_sparse_zeroes_ceil_sparsity_rows_per_column() -> None:
    init = resolve({"name": "sparse", "params": {"sparsity": 0.3, "std": 1.0}})
    values = generate(init, (10, 50), seed=5)
    assert ((values == 0).sum(axis=0) == 3).all()


@pytest.mark.parametrize("shape", [(16, 24), (24, 16), (3, 3, 8, 16)])
def test_orthogonal_is_orthonormal_along_the_short_side(shape: tuple[int, ...]) -> None:
    gain = 1.5
    init = resolve({"name": "orthogonal", "params": {"gain": gain}})
    q = generate(init, shape, seed=11, dtype="float64").reshape(-1, shape[-1]) / gain
    small = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    np.testing.assert_allclose(small, np.eye(small.shape[0]), atol=1e-10)


def test_identity_is_gain_times_rectangular_eye() -> None:
    init = resolve({"class_name": "Identity", "config": {"gain": 2.5}})
    np.testing.assert_array_equal(generate(init, (3, 5), seed=0), 2.5 * np.eye(3, 5))


def test_int32_constant_and_identity() -> None:
    out = generate(
        resolve({"name": "constant", "params": {"value": 3}}), (2, 3), seed=0, dtype="int32"
    )
    assert out.dtype == np.int32 and (out == 3).all()
    eye = generate(
        resolve({"name": "identity", "params": {"gain": 2}}), (2, 3), seed=0, dtype="int32"
    )
    np.testing.assert_array_equal(eye, 2 * np.eye(2, 3, dtype=np.int32))


def test_large_tensors_do_not_depend_on_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (1024, 700)  # several chunks of the canonical stream
    names = ["he_normal", "glorot_uniform", "kaiming_normal", "trunc_normal"]
    threaded = [generate(resolve(n), shape, seed=21).tobytes() for n in names]
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    serial = [generate(resolve(n), shape, seed=21).tobytes() for n in names]
    assert threaded == serial


def _digests(names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        shape = shapes_for(name)[-1] if name != "he_normal" else (1024, 700)
        values = generate(resolve(name), shape, seed=77, dtype="float32")
        out[name] = hashlib.sha256(values.tobytes()).hexdigest()
    return out


def test_same_seed_gives_same_bytes_in_another_process() -> None:
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from test_engine_generate import _digests, NAMES;"
        "print(json.dumps(_digests(NAMES)))"
    )
    here = os.path.dirname(__file__)
    child = subprocess.run(
        [sys.executable, "-c", script, here],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert json.loads(child.stdout) == _digests(NAMES)
