"""initlab's JAX-named schemes against jax.nn.initializers: fan_geo_avg variance scaling,
delta_orthogonal structure, uniform on [0, scale), truncated_normal in σ units, aliases."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest
from jax.nn import initializers as jinit

from app.initializers import InitializerError, generate, resolve

pytestmark = pytest.mark.conformance


def _jax(init_fn: Any, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.asarray(init_fn(jax.random.key(seed), shape, jax.numpy.float32), dtype=np.float64)


@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_geo_avg", "fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("shape", [(300, 700), (3, 3, 32, 64)])
def test_variance_scaling_matches_jax(distribution: str, mode: str, shape: tuple[int, ...]) -> None:
    theirs = _jax(jinit.variance_scaling(1.5, mode, distribution), shape)
    ours = generate(
        resolve(
            {
                "name": "jax.nn.initializers.variance_scaling",
                "params": {"scale": 1.5, "mode": mode, "distribution": distribution},
            }
        ),
        shape,
        seed=0,
        dtype="float64",
    )
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    if distribution != "normal":  # bounded: same support
        assert ours.min() == pytest.approx(theirs.min(), rel=0.02)
        assert ours.max() == pytest.approx(theirs.max(), rel=0.02)


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 3, 4, 6), (3, 5, 3, 2, 5), (4, 4, 16, 16)])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_delta_orthogonal_has_jax_structure(shape: tuple[int, ...], scale: float) -> None:
    theirs = _jax(jinit.delta_orthogonal(scale), shape)
    ours = generate(
        resolve({"name": "delta_orthogonal", "params": {"scale": scale}}),
        shape,
        seed=0,
        dtype="float64",
    )
    np.testing.assert_array_equal(ours != 0, theirs != 0)
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    for w in (ours[centre], theirs[centre]):
        np.testing.assert_allclose(w @ w.T, scale**2 * np.eye(shape[-2]), atol=1e-5)


def test_delta_orthogonal_refuses_what_jax_refuses() -> None:
    for shape in [(3, 8, 4), (8, 8)]:
        with pytest.raises(ValueError):
            _jax(jinit.delta_orthogonal(), shape)
        with pytest.raises(ValueError):
            generate(resolve("delta_orthogonal"), shape, seed=0)


@pytest.mark.parametrize("scale", [0.01, 1.0, 5.0])
def test_uniform_is_zero_to_scale_like_jax(scale: float) -> None:
    shape = (300, 400)
    theirs = _jax(jinit.uniform(scale), shape)
    ours = generate(
        resolve({"name": "jax.nn.initializers.uniform", "params": {"scale": scale}}),
        shape,
        seed=0,
        dtype="float64",
    )
    for values in (ours, theirs):
        assert values.min() >= 0 and values.max() < scale
    assert ours.mean() == pytest.approx(theirs.mean(), rel=0.01)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)


@pytest.mark.parametrize(
    ("stddev", "lower", "upper"), [(0.01, -2.0, 2.0), (1.0, -1.0, 3.0), (0.5, 0.0, 1.5)]
)
def test_truncated_normal_bounds_in_sigma_units_like_jax(
    stddev: float, lower: float, upper: float
) -> None:
    shape = (300, 400)
    theirs = _jax(jinit.truncated_normal(stddev, lower=lower, upper=upper), shape)
    init = resolve(
        {
            "name": "jax.nn.initializers.truncated_normal",
            "params": {"stddev": stddev, "lower": lower, "upper": upper},
        }
    )
    ours = generate(init, shape, seed=0, dtype="float64")
    assert ours.min() >= lower * stddev and ours.max() <= upper * stddev
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.03 * theirs.std())
    assert init.expected_std(1, 1) == pytest.approx(theirs.std(), rel=0.03)


@pytest.mark.parametrize(
    ("jax_name", "ours_name"),
    [
        ("glorot_normal", "glorot_normal"),
        ("xavier_normal", "glorot_normal"),
        ("he_normal", "he_normal"),
        ("kaiming_normal", "he_normal"),
        ("lecun_normal", "lecun_normal"),
        ("glorot_uniform", "glorot_uniform"),
        ("kaiming_uniform", "he_uniform"),
        ("lecun_uniform", "lecun_uniform"),
        ("normal", "jax_normal"),
        ("orthogonal", "orthogonal"),
    ],
)
def test_jax_named_initializers_match_in_distribution(jax_name: str, ours_name: str) -> None:
    shape = (200, 300)
    theirs = _jax(getattr(jinit, jax_name)(), shape)
    init = resolve(f"jax.nn.initializers.{jax_name}")
    assert init.name == ours_name
    ours = generate(init, shape, seed=0, dtype="float64")
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)


FAN_AXES: list[tuple[tuple[int, ...], dict[str, Any]]] = [
    ((6, 10), {"in_axis": 1, "out_axis": 0}),
    ((3, 3, 16, 32), {"in_axis": -2}),
    ((3, 3, 16, 32), {"in_axis": 2, "out_axis": 3, "batch_axis": 0}),
    ((4, 5, 6, 7), {"in_axis": [0, 1], "out_axis": -1}),
    ((8, 5, 6), {"batch_axis": [0]}),
    ((2, 9, 3, 5), {"in_axis": (1,), "out_axis": (3, 2), "batch_axis": (0,)}),
    ((12,), {"in_axis": 0, "out_axis": []}),
]


def _axes_ref(name: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"jax.nn.initializers.{name}",
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
    }


@pytest.mark.parametrize(("shape", "axes"), FAN_AXES)
def test_fans_with_jax_axes_equal_jax_compute_fans(
    shape: tuple[int, ...], axes: dict[str, Any]
) -> None:
    from jax._src.nn.initializers import _compute_fans

    theirs = _compute_fans(shape, **axes)
    for name in ("variance_scaling", "glorot_uniform", "he_normal", "lecun_uniform"):
        init = resolve(_axes_ref(name, axes))
        plan = init.plan(shape, "float32", "keras", None, None, None)
        assert plan.fans == pytest.approx(theirs), name


@pytest.mark.parametrize(("shape", "axes"), [a for a in FAN_AXES if len(a[0]) > 1])
@pytest.mark.parametrize(
    ("name", "jax_fn"),
    [
        ("glorot_uniform", jinit.glorot_uniform),
        ("he_uniform", jinit.he_uniform),
        ("lecun_normal", jinit.lecun_normal),
        ("he_normal", jinit.he_normal),
    ],
)
def test_presets_with_jax_axes_match_jax(
    shape: tuple[int, ...], axes: dict[str, Any], name: str, jax_fn: Any
) -> None:
    big = tuple(d * 8 if i == len(shape) - 1 else d for i, d in enumerate(shape))  # more samples
    theirs = _jax(jax_fn(**axes), big)
    init = resolve(_axes_ref(name, axes))
    ours = generate(init, big, seed=0, dtype="float64")
    fans = init.plan(big, "float64", "keras", None, None, None).fans
    assert init.expected_std(*fans) == pytest.approx(theirs.std(), rel=0.06)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.06)
    if name.endswith("uniform") or name == "he_normal" or name == "lecun_normal":
        # Bounded (uniform limit, or ±2σ of the truncated normal): both reach it.
        assert max(abs(ours.min()), ours.max()) == pytest.approx(np.abs(theirs).max(), rel=0.02)


def test_jax_axes_refused_where_jax_refuses_or_is_ambiguous() -> None:
    with pytest.raises(ValueError):
        _jax(jinit.glorot_uniform(batch_axis=0), (7,))
    with pytest.raises(InitializerError) as info:
        generate(resolve(_axes_ref("glorot_uniform", {"batch_axis": 0})), (7,), seed=0)
    assert info.value.field == "shape"
    for axes, field in [
        ({"in_axis": 0, "out_axis": 0}, "params.out_axis"),
        ({"in_axis": 5}, "params.in_axis"),
        ({"in_axis": [0, 0]}, "params.in_axis"),
    ]:
        with pytest.raises(InitializerError) as info:
            generate(resolve(_axes_ref("variance_scaling", axes)), (4, 6), seed=0)
        assert info.value.field == field
    with pytest.raises(InitializerError) as info:
        resolve(
            {"name": "he_normal", "params": {"in_axis": 0, "input_axes": [0], "output_axes": [1]}}
        )
    assert info.value.field == "params.in_axis"


def _orthonormal_along(w: np.ndarray, axis: int) -> bool:
    """JAX's orthogonal(column_axis=axis): columns along ``axis`` are orthonormal (or rows)."""
    m = np.moveaxis(w, axis, -1).reshape(-1, w.shape[axis])
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    return bool(np.allclose(gram, np.eye(small), atol=1e-5))


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((6, 10), 0), ((10, 6), 0), ((3, 4, 5), 1), ((3, 4, 5), -3), ((2, 3, 4, 5), 2), ((7, 5), -1)],
)
def test_orthogonal_column_axis_as_jax(shape: tuple[int, ...], axis: int) -> None:
    theirs = _jax(jinit.orthogonal(column_axis=axis), shape)
    ours = generate(
        resolve({"name": "jax.nn.initializers.orthogonal", "params": {"column_axis": axis}}),
        shape,
        seed=0,
        dtype="float64",
    )
    assert ours.shape == theirs.shape == shape
    assert _orthonormal_along(theirs, axis) and _orthonormal_along(ours, axis)
    # The squares sum to min(rows, cols) in both (orthonormal vectors).
    assert np.sum(ours**2) == pytest.approx(np.sum(theirs**2), rel=1e-5)


def test_orthogonal_column_axis_minus_one_is_the_default() -> None:
    default = generate(resolve("orthogonal"), (5, 4, 3), seed=3)
    explicit = generate(
        resolve({"name": "orthogonal", "params": {"column_axis": -1}}), (5, 4, 3), seed=3
    )
    assert default.tobytes() == explicit.tobytes()
    assert "column_axis" not in resolve("orthogonal").keras_config(3)["config"]


@pytest.mark.parametrize("axis", [0, 1, -2, -1])
@pytest.mark.parametrize("shape", [(3, 4, 6), (3, 3, 4, 4)])
def test_delta_orthogonal_column_axis_as_jax(shape: tuple[int, ...], axis: int) -> None:
    theirs = _jax(jinit.delta_orthogonal(column_axis=axis), shape)
    ours = generate(
        resolve({"name": "delta_orthogonal", "params": {"column_axis": axis}}),
        shape,
        seed=0,
        dtype="float64",
    )
    np.testing.assert_array_equal(ours != 0, theirs != 0)
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    for w in (ours[centre], theirs[centre]):
        np.testing.assert_allclose(w @ w.T, np.eye(shape[-2]), atol=1e-5)
