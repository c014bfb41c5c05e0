"""Every invalid parameter, shape, dtype or combination names its field and value."""

from __future__ import annotations

import math
from typing import Any

import pytest

from app.initializers import Initializer, InitializerError, generate, resolve

BAD_PARAMS: list[tuple[Any, str, Any]] = [
    ({"name": "variance_scaling", "params": {"scale": 0}}, "params.scale", 0),
    ({"name": "variance_scaling", "params": {"scale": -1.5}}, "params.scale", -1.5),
    ({"name": "variance_scaling", "params": {"mode": "fan_sum"}}, "params.mode", "fan_sum"),
    (
        {"name": "variance_scaling", "params": {"distribution": "cauchy"}},
        "params.distribution",
        "cauchy",
    ),
    ({"name": "variance_scaling", "params": {"input_axes": [0]}}, "params.output_axes", None),
    ({"class_name": "VarianceScaling", "config": {"scale": "big"}}, "config.scale", "big"),
    ({"className": "VarianceScaling", "config": {"mode": "fanSum"}}, "config.mode", "fanSum"),
    ({"name": "random_uniform", "params": {"minval": 1, "maxval": 1}}, "params.minval", 1.0),
    ({"name": "random_uniform", "params": {"minval": 2, "maxval": 1}}, "params.minval", 2.0),
    ({"name": "torch_uniform", "params": {"a": 1, "b": 0}}, "params.a", 1.0),
    ({"name": "random_normal", "params": {"stddev": -0.1}}, "params.stddev", -0.1),
    ({"name": "random_normal", "params": {"mean": math.nan}}, "params.mean", math.nan),
    ({"name": "constant", "params": {"value": math.inf}}, "params.value", math.inf),
    ({"name": "constant", "params": {"value": True}}, "params.value", True),
    ({"name": "orthogonal", "params": {"gain": "1"}}, "params.gain", "1"),
    ({"name": "kaiming_normal", "params": {"nonlinearity": "gelu"}}, "params.nonlinearity", "gelu"),
    ({"name": "kaiming_uniform", "params": {"mode": "fan_avg"}}, "params.mode", "fan_avg"),
    ({"name": "xavier_uniform", "params": {"gain": 0}}, "params.gain", 0),
    ({"name": "sparse", "params": {"sparsity": 1.0}}, "params.sparsity", 1.0),
    ({"name": "sparse", "params": {"sparsity": -0.1}}, "params.sparsity", -0.1),
    ({"name": "dirac", "params": {"groups": 0}}, "params.groups", 0),
    ({"name": "dirac", "params": {"groups": 1.5}}, "params.groups", 1.5),
    ({"name": "trunc_normal", "params": {"a": 2, "b": -2}}, "params.a", 2.0),
    ({"name": "trunc_normal", "params": {"a": 10, "b": 11}}, "params.a", 10.0),
    ({"name": "trunc_normal", "params": {"std": 0}}, "params.std", 0),
    ({"name": "jax_truncated_normal", "params": {"lower": 1, "upper": 0}}, "params.lower", 1.0),
    ({"name": "jax_uniform", "params": {"scale": 0}}, "params.scale", 0),
    ({"name": "he_normal", "params": {"scale": 2}}, "params.scale", 2),
    ({"name": "glorot_uniform", "params": {"input_axes": "0"}}, "params.input_axes", "0"),
    ({"name": "he_normal", "seed": -1}, "params.seed", -1),
    ({"name": "he_normal", "seed": 2**32}, "params.seed", 2**32),
    (
        {"class_name": "HeNormal", "config": {"seed": {"class_name": "SeedGenerator"}}},
        "config.seed",
        {"class_name": "SeedGenerator"},
    ),
    ({"name": "he_normal", "params": []}, "params", []),
    ({"name": "he_normal", "extra": 1}, "extra", 1),
    ({"name": 5}, "name", 5),
    ("", "name", ""),
]


@pytest.mark.parametrize(("ref", "field", "value"), BAD_PARAMS)
def test_bad_parameters_name_field_and_value(ref: Any, field: str, value: Any) -> None:
    with pytest.raises(InitializerError) as info:
        resolve(ref)
    assert info.value.field == field
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(info.value.value)
    else:
        assert info.value.value == value
    assert field in str(info.value) and info.value.msg in str(info.value)


BAD_CALLS: list[tuple[str, Any, dict[str, Any], str, Any]] = [
    ("identity", (3, 3, 3), {}, "shape", [3, 3, 3]),
    ("identity", (3,), {}, "shape", [3]),
    ("eye", (2, 2, 2), {}, "shape", [2, 2, 2]),
    ("sparse", (4,), {}, "shape", [4]),
    ("orthogonal", (5,), {}, "shape", [5]),
    ("torch_orthogonal", (5,), {}, "shape", [5]),
    ("delta_orthogonal", (3, 3, 8, 4), {}, "shape", [3, 3, 8, 4]),
    ("delta_orthogonal", (8, 8), {}, "shape", [8, 8]),
    ("delta_orthogonal", (1, 1, 1, 1, 2, 2), {}, "shape", [1, 1, 1, 1, 2, 2]),
    ("dirac", (4, 4), {}, "shape", [4, 4]),
    ("he_normal", (-1, 3), {}, "shape.0", -1),
    ("he_normal", (2.5, 3), {}, "shape.0", 2.5),
    ("he_normal", (True, 3), {}, "shape.0", True),
    ("he_normal", "3,3", {}, "shape", "3,3"),
    ("he_normal", (5,), {"layout": "torch"}, "shape", [5]),
    ("he_normal", (5, 5), {"layout": "tf"}, "layout", "tf"),
    ("he_normal", (5, 5), {"dtype": "int32"}, "dtype", "int32"),
    ("he_normal", (5, 5), {"dtype": "float8"}, "dtype", "float8"),
    ("he_normal", (5, 5), {"fan_in": 0}, "fan_in", 0),
    ("he_normal", (5, 5), {"fan_out": -3}, "fan_out", -3),
    ("he_normal", (5, 5), {"fan_in": 2.0}, "fan_in", 2.0),
    ("he_normal", (5, 5), {"compat": "torch"}, "compat", "torch"),
    ("xavier_uniform", (5, 5), {"compat": "keras"}, "compat", "keras"),
    ("delta_orthogonal", (3, 3, 4, 4), {"compat": "keras"}, "compat", "keras"),
    ("orthogonal", (5, 5), {"compat": "keras", "dtype": "float16"}, "dtype", "float16"),
    ("he_normal", (5, 5), {"seed": -1}, "seed", -1),
    ("he_normal", (5, 5), {"seed": 2**32}, "seed", 2**32),
    ("he_normal", (5, 5), {"seed": "1"}, "seed", "1"),
]


@pytest.mark.parametrize(("name", "shape", "kwargs", "field", "value"), BAD_CALLS)
def test_bad_calls_name_field_and_value(
    name: str, shape: Any, kwargs: dict[str, Any], field: str, value: Any
) -> None:
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(InitializerError) as info:
        generate(resolve(name), shape, **kwargs)
    assert (info.value.field, info.value.value) == (field, value)


def test_keras_compat_rejects_fan_geo_avg() -> None:
    init = resolve({"name": "variance_scaling", "params": {"mode": "fan_geo_avg"}})
    with pytest.raises(InitializerError) as info:
        generate(init, (4, 4), seed=0, compat="keras")
    assert info.value.field == "compat" and "fan_geo_avg" in info.value.msg


def test_dirac_groups_must_divide_out_channels() -> None:
    with pytest.raises(InitializerError) as info:
        generate(resolve({"name": "dirac", "params": {"groups": 3}}), (4, 2, 3), seed=0)
    assert info.value.field == "params.groups" and info.value.value == 3


def test_int32_constant_needs_an_integer_value() -> None:
    with pytest.raises(InitializerError) as info:
        generate(
            resolve({"name": "constant", "params": {"value": 0.5}}), (2,), seed=0, dtype="int32"
        )
    assert info.value.field == "params.value"


def test_check_validates_huge_shapes_without_allocating() -> None:
    init: Initializer = resolve("orthogonal")
    shape = (10**6, 10**6)
    init.check(shape, dtype="float32", layout="keras", fan_in=None, fan_out=None, compat=None)
    assert init.work(shape) == 10**18
    assert resolve("he_normal").work((10**6, 10**6)) == 10**12
    with pytest.raises(InitializerError):
        init.check(
            (10**12,), dtype="float32", layout="keras", fan_in=None, fan_out=None, compat=None
        )


def test_truncation_cost_counts_rejections() -> None:
    narrow = resolve({"name": "trunc_normal", "params": {"a": 2.5, "b": 3.5}})
    assert narrow.work((100, 100)) > 100 * 100 * 50
