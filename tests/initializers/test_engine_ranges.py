"""Extreme parameters: values that would overflow the dtype or be subnormal in it are refused
up front (naming the field and value); everything accepted is finite and correctly scaled."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from fastapi.testclient import TestClient
from initializer_cases import BY_NAME, NAMES, shapes_for

from app.config import Settings
from app.initializers import InitializerError, generate, resolve
from app.initializers.sampling import SMALL
from app.main import create_app

FLOATS = ("float16", "bfloat16", "float32", "float64")
INFO = {d: ml_dtypes.finfo(d if d != "bfloat16" else ml_dtypes.bfloat16) for d in FLOATS}
BIG = 2 * SMALL + 2  # the chunked path; (3, 3) is drawn from the seeded generator itself


def _max(dtype: str) -> float:
    return float(INFO[dtype].max)


def _tiny(dtype: str) -> float:
    return float(INFO[dtype].smallest_normal)


def _refused(dtype: str) -> list[tuple[str, dict[str, Any], str, float]]:
    """(scheme, params, field, value) over the largest finite number of ``dtype``."""
    top, small = _max(dtype), _tiny(dtype)
    cases: list[tuple[str, dict[str, Any], str, float]] = [
        # N(mean, σ²) reaches |mean| + 13.71σ: σ = max/5 → 2.7·max.
        ("random_normal", {"stddev": top / 5}, "params.stddev", top / 5),
        ("torch_normal", {"std": top / 5}, "params.std", top / 5),
        ("jax_normal", {"stddev": top / 5}, "params.stddev", top / 5),
        ("sparse", {"std": top / 5}, "params.std", top / 5),
        ("xavier_normal", {"gain": top / 5}, "params.gain", top / 5),
        # truncated at ±2σ: σ = max/1.5 → 1.33·max.
        ("truncated_normal", {"stddev": top / 1.5}, "params.stddev", top / 1.5),
        # tiny parameters: subnormal values.
        ("random_normal", {"stddev": small / 16}, "params.stddev", small / 16),
        ("random_normal", {"mean": small / 16, "stddev": 0.0}, "params.mean", small / 16),
        ("truncated_normal", {"stddev": small / 16}, "params.stddev", small / 16),
        ("trunc_normal", {"std": small / 16, "a": -1.0, "b": 1.0}, "params.std", small / 16),
        ("jax_truncated_normal", {"stddev": small / 16}, "params.stddev", small / 16),
        (
            "random_uniform",
            {"minval": -small / 16, "maxval": small / 16},
            "params.maxval",
            small / 16,
        ),
        ("jax_uniform", {"scale": small / 16}, "params.scale", small / 16),
        ("constant", {"value": -small / 16}, "params.value", -small / 16),
        ("orthogonal", {"gain": small / 16}, "params.gain", small / 16),
    ]
    if dtype != "float64":  # every finite float64 parameter fits float64 itself
        cases += [
            ("constant", {"value": top * 2}, "params.value", top * 2),
            ("identity", {"gain": -top * 2}, "params.gain", -top * 2),
            ("orthogonal", {"gain": top * 2}, "params.gain", top * 2),
            ("delta_orthogonal", {"scale": top * 2}, "params.scale", top * 2),
            ("random_uniform", {"maxval": top * 2}, "params.maxval", top * 2),
            ("random_uniform", {"minval": -top * 2}, "params.minval", -top * 2),
            ("torch_uniform", {"b": top * 2}, "params.b", top * 2),
            ("jax_uniform", {"scale": top * 2}, "params.scale", top * 2),
            ("xavier_uniform", {"gain": top * 2}, "params.gain", top * 2),
            ("variance_scaling", {"scale": top * top}, "params.scale", top * top),
            ("random_normal", {"mean": top * 2}, "params.mean", top * 2),
            # std = sqrt(scale / n) and gain / sqrt(fan) below the smallest normal
            (
                "variance_scaling",
                {"scale": small * small / 256},
                "params.scale",
                small * small / 256,
            ),
            ("kaiming_normal", {"a": 1e100}, "params.a", 1e100),
            ("kaiming_uniform", {"a": -1e100}, "params.a", -1e100),
            # values lie in [a, b] and within |mean| + 13.71·std: both beyond max
            ("trunc_normal", {"std": top / 5, "a": -top * 2, "b": top * 2}, "params.a", -top * 2),
            ("trunc_normal", {"std": top, "a": -top * 2, "b": top * 1.5}, "params.a", -top * 2),
        ]
    return cases


REFUSED = [(dtype, *case) for dtype in FLOATS for case in _refused(dtype)]


@pytest.mark.parametrize(("dtype", "name", "params", "field", "value"), REFUSED)
def test_values_beyond_the_dtype_are_refused_naming_field_and_value(
    dtype: str, name: str, params: dict[str, Any], field: str, value: float
) -> None:
    init = resolve({"name": name, "params": params})
    shape = (3, 3, 4) if name == "delta_orthogonal" else (3, 3)
    with pytest.raises(InitializerError) as info:
        init.check(shape, dtype=dtype)
    assert (info.value.field, info.value.value) == (field, value)
    assert dtype in info.value.msg or "overflows" in info.value.msg
    with pytest.raises(InitializerError):  # generate refuses before drawing anything
        generate(init, shape, seed=0, dtype=dtype)


def _accepted(dtype: str) -> list[tuple[str, dict[str, Any]]]:
    """Parameters at the edge of ``dtype``: large or small, but representable."""
    top, small = _max(dtype), _tiny(dtype)
    return [
        ("random_normal", {"stddev": top / 20}),
        ("random_normal", {"stddev": small * 64}),
        ("random_normal", {"mean": 1.0, "stddev": small / 16}),  # values ≈ 1: not subnormal
        ("truncated_normal", {"stddev": top / 3}),
        ("trunc_normal", {"std": top / 3, "a": -top / 2, "b": top / 2}),
        # the width overflows the dtype: drawn as low·(1 − u) + high·u
        ("random_uniform", {"minval": -top, "maxval": top}),
        ("random_uniform", {"minval": small * 64, "maxval": small * 128}),
        ("constant", {"value": top}),
        ("orthogonal", {"gain": top}),
        ("xavier_uniform", {"gain": top / 2}),
        ("variance_scaling", {"scale": small * 64, "distribution": "untruncated_normal"}),
    ]


ACCEPTED = [(dtype, *case) for dtype in FLOATS for case in _accepted(dtype)]


@pytest.mark.parametrize(("dtype", "name", "params"), ACCEPTED)
@pytest.mark.parametrize("shape", [(3, 3), (BIG // 2, 2)], ids=["small", "chunked"])
def test_edge_parameters_give_finite_nonzero_values(
    dtype: str, name: str, params: dict[str, Any], shape: tuple[int, int]
) -> None:
    values = generate(resolve({"name": name, "params": params}), shape, seed=7, dtype=dtype)
    wide = values.astype(np.float64)
    assert np.isfinite(wide).all()
    assert np.count_nonzero(wide) >= wide.size * 0.99


@pytest.mark.parametrize("stddev", [1e-25, 1e-20, 1e20, 1e30, 1e37])
@pytest.mark.parametrize("size", [9, BIG], ids=["small", "chunked"])
def test_float32_normals_scale_exactly_at_extreme_stddev(stddev: float, size: int) -> None:
    # N(0, s²) is s·N(0, 1) of the same stream, rounded once (±1 ulp from the fold into z).
    unit = generate(resolve({"name": "random_normal", "params": {"stddev": 1.0}}), (size,), seed=3)
    scaled = generate(
        resolve({"name": "random_normal", "params": {"stddev": stddev}}), (size,), seed=3
    )
    assert np.isfinite(scaled).all() and np.count_nonzero(scaled) == size
    np.testing.assert_allclose(scaled, unit.astype(np.float64) * stddev, rtol=6e-7)


@pytest.mark.parametrize("name", ["random_normal", "truncated_normal"])
@pytest.mark.parametrize("size", [9, BIG])
@pytest.mark.parametrize("stddev", [0.0, -0.0])
def test_zero_stddev_gives_positive_zeros(name: str, size: int, stddev: float) -> None:
    init = resolve({"name": name, "params": {"stddev": stddev}})
    assert math.copysign(1.0, init.params["stddev"]) == 1.0
    values = generate(init, (size,), seed=1)
    assert not np.signbit(values).any() and not values.any()
    shifted = generate(
        resolve({"name": name, "params": {"mean": 2.5, "stddev": stddev}}), (size,), seed=1
    )
    assert (shifted == 2.5).all()


# The parameters whose value 0 makes a scheme's values (or most of them) zero.
SCALES = ("gain", "scale", "stddev", "std", "value")


@pytest.mark.parametrize("name", NAMES)
def test_zero_gain_scale_or_std_gives_no_negative_zero(name: str) -> None:
    # docs/schemes.md (Ranges): σ = 0, gain 0 and friends give +0.0 everywhere, never 0·z's
    # (or 0·Q's) -0.0. Schemes that refuse 0 (scale > 0) keep their defaults.
    inits = [resolve(name)]
    for key in SCALES:
        if key in BY_NAME[name]["params"]:
            for zero in (0.0, -0.0):
                with contextlib.suppress(InitializerError):
                    inits.append(resolve({"name": name, "params": {key: zero}}))
    for init in inits:
        for shape in shapes_for(name):
            for dtype in BY_NAME[name]["dtypes"]:
                values = generate(init, shape, seed=2, dtype=dtype)
                assert not np.signbit(values[values == 0]).any(), (init, shape, dtype)
    zeroed = name in {
        *("constant", "identity", "random_normal", "truncated_normal", "orthogonal"),
        *("delta_orthogonal", "torch_orthogonal", "sparse", "torch_normal", "jax_normal"),
        "jax_truncated_normal",
    }
    assert (len(inits) == 3) == zeroed, inits  # the default, 0.0 and -0.0


def test_negative_zero_parameters_become_zero() -> None:
    init = resolve({"name": "constant", "params": {"value": -0.0}})
    assert math.copysign(1.0, init.params["value"]) == 1.0
    assert not np.signbit(generate(init, (4,), seed=0)).any()


# (reference, [low, high] of its values, whether high is excluded) on a (1000, 1000) kernel.
HALF_OPEN_OR_BOUNDED: list[tuple[Any, float, float, bool]] = [
    ({"name": "jax.nn.initializers.uniform", "params": {"scale": 1.0}}, 0.0, 1.0, True),
    ({"name": "jax.nn.initializers.uniform", "params": {"scale": 0.3}}, 0.0, 0.3, True),
    ({"name": "random_uniform", "params": {"minval": -1.0, "maxval": 1.0}}, -1.0, 1.0, True),
    ({"name": "random_uniform", "params": {"minval": -0.05, "maxval": 0.05}}, -0.05, 0.05, True),
    ({"name": "uniform_", "params": {"a": 0.3, "b": 0.7}}, 0.3, 0.7, True),
    ("he_uniform", -math.sqrt(6 / 1000), math.sqrt(6 / 1000), True),
    ({"name": "truncated_normal", "params": {"mean": 0.3, "stddev": 0.1}}, 0.1, 0.5, False),
    ({"name": "trunc_normal_", "params": {"a": -0.3, "b": 0.7}}, -0.3, 0.7, False),
    (
        {"name": "trunc_normal_", "params": {"mean": 0.1, "std": 0.3, "a": -0.2, "b": 0.4}},
        -0.2,
        0.4,
        False,
    ),
    (
        {"name": "jax.nn.initializers.truncated_normal", "params": {"stddev": 0.3}},
        -0.6,
        0.6,
        False,
    ),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(("ref", "low", "high", "open_high"), HALF_OPEN_OR_BOUNDED)
def test_half_precision_casts_stay_in_the_range(
    ref: Any, low: float, high: float, open_high: bool, dtype: str
) -> None:
    # The float32 draws rounded to nearest would put hundreds to thousands of these values on
    # an excluded bound or past a truncation bound (docs/schemes.md).
    values = generate(resolve(ref), (1000, 1000), seed=1, dtype=dtype).astype(np.float64)
    assert values.min() >= low
    assert values.max() < high if open_high else values.max() <= high
    unbounded = generate(resolve(ref), (1000, 1000), seed=1).astype(np.float64)  # float32
    top = INFO[dtype].eps * abs(high)  # the ulp near high, about
    assert (unbounded > high - top).any()  # draws near the bound exist: the case is exercised


def test_compat_keras_keeps_numpys_half_precision_rounding() -> None:
    # compat "keras": float64 draws astype(bfloat16), exactly Keras 3 — which rounds onto maxval.
    ref = {"name": "random_uniform", "params": {"minval": -1.0, "maxval": 1.0}}
    keras = generate(resolve(ref), (1000, 1000), seed=1, dtype="bfloat16", compat="keras")
    assert (keras.astype(np.float64) == 1.0).any()


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        ({"name": "random_uniform", "params": {"minval": 0.30001, "maxval": 0.30002}}, "minval"),
        (
            {
                "name": "trunc_normal_",
                "params": {"mean": 1.0001, "std": 1e-4, "a": 1.00001, "b": 1.0002},
            },
            "a",
        ),
        ({"name": "truncated_normal", "params": {"mean": 1.0001, "stddev": 1e-6}}, "stddev"),
    ],
)
def test_half_precision_ranges_without_a_number_of_the_dtype_are_refused(
    ref: dict[str, Any], field: str
) -> None:
    init = resolve(ref)
    with pytest.raises(InitializerError) as info:
        init.check((4,), dtype="float16")
    assert info.value.field == f"params.{field}" and "no float16 number lies in" in info.value.msg
    assert info.value.value == ref["params"][field]
    init.check((4,), dtype="float32")  # float32 has numbers there


AUDIT: list[tuple[Any, tuple[int, ...], dict[str, Any], str, Any]] = [
    # huge integers stay exact (no float conversion, no OverflowError)
    ({"name": "dirac", "params": {"groups": 10**30}}, (4, 2, 3), {}, "params.groups", 10**30),
    ({"name": "dirac", "params": {"groups": 10**400}}, (4, 2, 3), {}, "params.groups", 10**400),
    ({"name": "random_normal", "params": {"mean": 10**400}}, (2,), {}, "params.mean", 10**400),
    ({"name": "orthogonal", "params": {"gain": -(10**309)}}, (2, 2), {}, "params.gain", -(10**309)),
    ({"name": "he_normal"}, (4, 4), {"fan_in": 2**63}, "fan_in", 2**63),
    ({"name": "xavier_uniform"}, (4, 4), {"fan_out": 10**400}, "fan_out", 10**400),
    ({"name": "general_rule"}, (4, 4), {"fan_in": 10**400}, "fan_in", 10**400),
    # explicit fans small enough to count but making float16 values subnormal
    ({"name": "he_normal"}, (4, 4), {"fan_in": 10**15, "dtype": "float16"}, "fan_in", 10**15),
    ({"name": "general_rule"}, (4, 4), {"fan_in": 10**15, "dtype": "float16"}, "fan_in", 10**15),
    ({"name": "kaiming_normal"}, (4, 4), {"fan_in": 10**15, "dtype": "float16"}, "fan_in", 10**15),
    # a huge negative slope: PyTorch's a² overflows
    ({"name": "kaiming_normal", "params": {"a": 1e200}}, (4, 4), {}, "params.a", 1e200),
    ({"class_name": "kaiming_normal", "config": {"a": 1e155}}, (4, 4), {}, "config.a", 1e155),
    # int32 outputs: the gain / value must fit 32 bits
    (
        {"name": "identity", "params": {"gain": 2**31}},
        (2, 2),
        {"dtype": "int32"},
        "params.gain",
        2**31,
    ),
    (
        {"name": "constant", "params": {"value": -(2**31) - 1}},
        (2,),
        {"dtype": "int32"},
        "params.value",
        -(2**31) - 1,
    ),
    # compat "keras": NumPy's uniform refuses a range beyond float64
    (
        {"name": "random_uniform", "params": {"minval": -1e308, "maxval": 1e308}},
        (2,),
        {"dtype": "float64", "compat": "keras"},
        "params.maxval",
        1e308,
    ),
    # NaN / infinity stay refused
    ({"name": "kaiming_uniform", "params": {"a": math.inf}}, (2, 2), {}, "params.a", math.inf),
    ({"name": "trunc_normal", "params": {"b": -math.inf}}, (2, 2), {}, "params.b", -math.inf),
]


@pytest.mark.parametrize(("ref", "shape", "kwargs", "field", "value"), AUDIT)
def test_parameter_audit_names_field_and_value(
    ref: Any, shape: tuple[int, ...], kwargs: dict[str, Any], field: str, value: Any
) -> None:
    with pytest.raises(InitializerError) as info:
        generate(resolve(ref), shape, seed=0, **kwargs)
    assert (info.value.field, info.value.value) == (field, value)


def test_float64_keeps_what_float32_refuses() -> None:
    tiny = resolve({"name": "kaiming_normal", "params": {"a": 1e100}})
    with pytest.raises(InitializerError) as info:
        tiny.check((4, 4), dtype="float32")
    assert info.value.field == "params.a" and "float32" in info.value.msg
    values = generate(tiny, (4, 4), seed=0, dtype="float64")
    assert np.isfinite(values).all() and (np.abs(values) > 1e-102).all()
    assert (np.abs(values) < 1e-99).all()


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(create_app(Settings())) as c:
        yield c


@pytest.mark.parametrize(
    ("initializer", "dtype", "shows"),
    [
        ({"name": "kaiming_normal", "params": {"a": 1e200}}, "float32", "1e+200"),
        ({"name": "random_normal", "params": {"stddev": 1e20}}, "float16", "1e+20"),
        ({"name": "constant", "params": {"value": 1e308}}, "float16", "1e+308"),
        ({"name": "random_uniform", "params": {"maxval": 1e39}}, "float32", "1e+39"),
        ({"name": "random_normal", "params": {"stddev": 1e-40}}, "float32", "1e-40"),
    ],
)
def test_http_extreme_parameters_are_422_problems(
    client: TestClient, initializer: dict[str, Any], dtype: str, shows: str
) -> None:
    resp = client.post(
        "/v1/tensors", json={"shape": [4, 4], "initializer": initializer, "dtype": dtype, "seed": 1}
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert shows in resp.text and "null" not in resp.text
