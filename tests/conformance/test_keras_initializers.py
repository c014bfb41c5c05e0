"""initlab against Keras 3 (NumPy backend): compat "keras" is bit-identical, the canonical
stream matches Keras's statistics, and our Keras configs load in Keras unchanged."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

from typing import Any

import keras
import ml_dtypes
import numpy as np
import pytest
from keras.src.initializers.random_initializers import (
    compute_fans as keras_compute_fans,
)

from app.initializers import InitializerError, compute_fans, generate, resolve

pytestmark = pytest.mark.conformance

# KERAS_BACKEND must be read before keras is first imported in this process.
assert keras.backend.backend() == "numpy", keras.backend.backend()

DTYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}

KERAS_REFS: list[Any] = [
    "zeros",
    "ones",
    {"name": "constant", "params": {"value": 0.3}},
    "random_uniform",
    {"name": "random_uniform", "params": {"minval": -2.0, "maxval": 0.5}},
    "random_normal",
    {"name": "random_normal", "params": {"mean": 1.0, "stddev": 0.3}},
    "truncated_normal",
    {"name": "truncated_normal", "params": {"mean": -0.5, "stddev": 2.0}},
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    {"name": "orthogonal", "params": {"gain": 1.3}},
    "identity",
    {"name": "identity", "params": {"gain": 0.7}},
    *(
        {"name": "variance_scaling", "params": {"scale": s, "mode": m, "distribution": d}}
        for s, m, d in [
            (0.5, "fan_in", "truncated_normal"),
            (2.0, "fan_out", "uniform"),
            (1.0, "fan_avg", "untruncated_normal"),
            (3.0, "fan_in", "uniform"),
        ]
    ),
    {"name": "he_normal", "params": {"input_axes": [1], "output_axes": [0]}},
]
SHAPES = [(5, 7), (7, 5), (3, 3, 4, 8), (13,), (2, 3, 5, 4, 6)]
SEEDS = [0, 123, 2**32 - 1]


def _keras_values(init_ref: Any, seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    config = resolve(init_ref).keras_config(seed)
    keras_init = keras.initializers.deserialize(config)
    return np.asarray(keras_init(shape, dtype=dtype))


def _applicable(ref: Any, shape: tuple[int, ...]) -> bool:
    name = resolve(ref).name
    if name == "identity":
        return len(shape) == 2
    if name == "orthogonal":
        return len(shape) >= 2
    if resolve(ref).params.get("input_axes"):
        return len(shape) == 2
    return True


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ref", KERAS_REFS, ids=lambda r: r if isinstance(r, str) else r["name"])
def test_compat_keras_is_bit_identical(ref: Any, seed: int) -> None:
    init = resolve(ref)
    for shape in SHAPES:
        if not _applicable(ref, shape):
            continue
        dtypes = ["float32", "float64"] if init.name == "orthogonal" else list(DTYPES)
        for dtype in dtypes:
            expected = _keras_values(ref, seed, shape, dtype).astype(DTYPES[dtype])
            ours = generate(init, shape, seed=seed, dtype=dtype, compat="keras")
            assert ours.dtype == np.dtype(DTYPES[dtype])
            assert ours.tobytes() == expected.tobytes(), (shape, dtype)


@pytest.mark.parametrize("ref", KERAS_REFS, ids=lambda r: r if isinstance(r, str) else r["name"])
def test_our_keras_config_is_what_keras_serializes(ref: Any) -> None:
    config = resolve(ref).keras_config(42)
    keras_init = keras.initializers.deserialize(config)
    assert type(keras_init).__name__ == config["class_name"]
    keras_config = keras_init.get_config()
    if config["class_name"] == "Identity":
        # Keras 3.15's Identity.get_config() drops `gain` (it accepts it on input); ours keeps it.
        assert keras_config == {} and keras_init.gain == config["config"]["gain"]
        return
    assert keras_config == config["config"]
    # ... and Keras's own serialization resolves back to the same initializer.
    assert resolve(keras.initializers.serialize(keras_init)) == resolve(config)


@pytest.mark.parametrize(
    "name",
    [
        "GlorotUniform",
        "HeNormal",
        "LecunNormal",
        "RandomNormal",
        "TruncatedNormal",
        "Orthogonal",
        "Identity",
        "Zeros",
    ],
)
def test_keras_class_names_and_their_serialized_objects_resolve(name: str) -> None:
    keras_init = getattr(keras.initializers, name)()
    assert resolve(name).keras_class == name
    assert resolve(keras.initializers.serialize(keras_init)).name == resolve(name).name


@pytest.mark.parametrize(
    "shape", [(), (9,), (784, 256), (3, 16, 32), (3, 3, 16, 32), (2, 3, 3, 4, 8)]
)
def test_fans_equal_keras_compute_fans(shape: tuple[int, ...]) -> None:
    assert compute_fans(shape) == keras_compute_fans(shape)


BOUNDED = {
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "random_uniform",
    "truncated_normal",
}


@pytest.mark.parametrize(
    "name",
    [
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
        "random_uniform",
        "random_normal",
        "truncated_normal",
        "orthogonal",
    ],
)
@pytest.mark.parametrize("shape", [(300, 400), (3, 3, 32, 64)])
def test_canonical_statistics_match_keras(name: str, shape: tuple[int, ...]) -> None:
    ours = generate(resolve(name), shape, seed=5).astype(np.float64)
    theirs = _keras_values(name, 5, shape, "float64").astype(np.float64)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert abs(ours.mean() - theirs.mean()) < 0.03 * theirs.std()
    if name in BOUNDED:
        # Bounded distributions: both reach the same bounds.
        assert ours.min() == pytest.approx(theirs.min(), rel=0.02)
        assert ours.max() == pytest.approx(theirs.max(), rel=0.02)


STFT_SHAPES = [(16, 1, 9), (400, 1, 257), (3, 1, 2), (1, 1, 5), (255, 1, 129)]
STFT_PARAMS = [
    {"side": side, "window": window, "scaling": scaling, "periodic": periodic}
    for side in ("real", "imag")
    for window in (
        "hann",
        "hamming",
        "blackman",
        "nuttall",
        "blackmanharris",
        "flattop",
        "boxcar",
        None,
    )
    for scaling in ("density", "spectrum", None)
    for periodic in (False, True)
]


@pytest.mark.parametrize("params", STFT_PARAMS, ids=lambda p: "-".join(map(str, p.values())))
def test_stft_is_bit_identical_to_keras(params: dict[str, Any]) -> None:
    init = resolve({"name": "stft", "params": params})
    keras_init = keras.initializers.STFT(**params)
    for shape in STFT_SHAPES:
        for dtype in ("float32", "float16", "bfloat16"):
            expected = np.asarray(keras_init(shape, dtype=dtype)).astype(DTYPES[dtype])
            ours = generate(init, shape, seed=0, dtype=dtype, compat="keras")
            assert ours.tobytes() == expected.tobytes(), (shape, dtype)
        # Canonical values: Keras's formula in float64, rounded once. Keras's float32 phase
        # 2π·t·f/n is off by up to a few float32 ulps of π·frame_length.
        canonical = generate(init, shape, seed=0, dtype="float64")
        reference = np.asarray(keras_init(shape, dtype="float32")).astype(np.float64)
        phase_error = 4 * float(np.finfo(np.float32).eps) * np.pi * shape[0]
        np.testing.assert_allclose(canonical, reference, rtol=0, atol=phase_error)


def test_stft_defaults_and_config_are_keras_s() -> None:
    keras_init = keras.initializers.STFT()
    init = resolve("stft")
    assert init.params == keras_init.get_config()
    config = init.keras_config(None)
    assert config == {"class_name": "STFT", "config": keras_init.get_config()}
    loaded = keras.initializers.deserialize(config)
    assert isinstance(loaded, keras.initializers.STFT)
    assert resolve(keras.initializers.serialize(loaded)) == init
    assert resolve("STFTInitializer").name == "stft"


def test_stft_compat_keras_refuses_float64_where_keras_returns_float32() -> None:
    assert np.asarray(keras.initializers.STFT()((16, 1, 9), dtype="float64")).dtype == np.float32
    with pytest.raises(InitializerError) as info:
        generate(resolve("stft"), (16, 1, 9), seed=0, dtype="float64", compat="keras")
    assert info.value.field == "dtype"
