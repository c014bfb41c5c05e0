"""initlab's JAX-named schemes against jax.nn.initializers: fan_geo_avg variance scaling,
delta_orthogonal structure, uniform on [0, scale), truncated_normal in σ units, aliases."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest
from jax.nn import initializers as jinit

from app.initializers import generate, resolve

pytestmark = pytest.mark.conformance


def _jax(init_fn: Any, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.asarray(init_fn(jax.random.key(seed), shape, jax.numpy.float32), dtype=np.float64)


@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_geo_avg", "fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("shape", [(300, 700), (3, 3, 32, 64)])
def test_variance_scaling_matches_jax(distribution: str, mode: str,
                                      shape: tuple[int, ...]) -> None:
    theirs = _jax(jinit.variance_scaling(1.5, mode, distribution), shape)
    ours = generate(
        resolve({"name": "jax.nn.initializers.variance_scaling",
                 "params": {"scale": 1.5, "mode": mode, "distribution": distribution}}),
        shape, seed=0, dtype="float64")
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    if distribution != "normal":  # bounded: same support
        assert ours.min() == pytest.approx(theirs.min(), rel=0.02)
        assert ours.max() == pytest.approx(theirs.max(), rel=0.02)


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 3, 4, 6), (3, 5, 3, 2, 5), (4, 4, 16, 16)])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_delta_orthogonal_has_jax_structure(shape: tuple[int, ...], scale: float) -> None:
    theirs = _jax(jinit.delta_orthogonal(scale), shape)
    ours = generate(resolve({"name": "delta_orthogonal", "params": {"scale": scale}}), shape,
                    seed=0, dtype="float64")
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
    ours = generate(resolve({"name": "jax.nn.initializers.uniform", "params": {"scale": scale}}),
                    shape, seed=0, dtype="float64")
    for values in (ours, theirs):
        assert values.min() >= 0 and values.max() < scale
    assert ours.mean() == pytest.approx(theirs.mean(), rel=0.01)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)


@pytest.mark.parametrize(("stddev", "lower", "upper"), [(0.01, -2.0, 2.0), (1.0, -1.0, 3.0),
                                                        (0.5, 0.0, 1.5)])
def test_truncated_normal_bounds_in_sigma_units_like_jax(stddev: float, lower: float,
                                                         upper: float) -> None:
    shape = (300, 400)
    theirs = _jax(jinit.truncated_normal(stddev, lower=lower, upper=upper), shape)
    init = resolve({"name": "jax.nn.initializers.truncated_normal",
                    "params": {"stddev": stddev, "lower": lower, "upper": upper}})
    ours = generate(init, shape, seed=0, dtype="float64")
    assert ours.min() >= lower * stddev and ours.max() <= upper * stddev
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.03 * theirs.std())
    assert init.expected_std(1, 1) == pytest.approx(theirs.std(), rel=0.03)


@pytest.mark.parametrize(("jax_name", "ours_name"), [
    ("glorot_normal", "glorot_normal"), ("xavier_normal", "glorot_normal"),
    ("he_normal", "he_normal"), ("kaiming_normal", "he_normal"), ("lecun_normal", "lecun_normal"),
    ("glorot_uniform", "glorot_uniform"), ("kaiming_uniform", "he_uniform"),
    ("lecun_uniform", "lecun_uniform"), ("normal", "jax_normal"), ("orthogonal", "orthogonal"),
])
def test_jax_named_initializers_match_in_distribution(jax_name: str, ours_name: str) -> None:
    shape = (200, 300)
    theirs = _jax(getattr(jinit, jax_name)(), shape)
    init = resolve(f"jax.nn.initializers.{jax_name}")
    assert init.name == ours_name
    ours = generate(init, shape, seed=0, dtype="float64")
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
