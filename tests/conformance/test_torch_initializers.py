"""initlab's PyTorch-named schemes against torch 2.13 (CPU): fans, gains, bounds, std,
dirac/eye equality, orthogonality, truncation bounds, nn.Linear/Conv defaults."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from app.initializers import InitializerError, compute_fans, generate, resolve
from app.initializers.gains import NONLINEARITIES, calculate_gain

pytestmark = pytest.mark.conformance


def _torch(fn: Any, shape: tuple[int, ...], **kwargs: Any) -> np.ndarray:
    torch.manual_seed(0)
    tensor = torch.empty(shape, dtype=torch.float64)
    fn(tensor, **kwargs)
    return tensor.numpy()


@pytest.mark.parametrize(
    "shape", [(784, 256), (256, 784), (8, 3, 5), (32, 16, 3, 3), (4, 2, 3, 3, 3), (1, 1)]
)
def test_torch_layout_fans_equal_torch(shape: tuple[int, ...]) -> None:
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert compute_fans(shape, "torch") == tuple(expected)


@pytest.mark.parametrize("shape", [(), (7,)])
def test_torch_layout_refuses_rank_below_two_like_torch(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(InitializerError) as info:
        compute_fans(shape, "torch")
    assert info.value.field == "shape"


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("param", [None, 0, 0.2, 1.0, -0.5])
def test_calculate_gain_equals_torch(nonlinearity: str, param: float | None) -> None:
    assert calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


def test_unknown_nonlinearity_is_refused_by_both() -> None:
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain("gelu")
    with pytest.raises(InitializerError):
        resolve({"name": "kaiming_normal", "params": {"nonlinearity": "gelu"}})


KAIMING_XAVIER = [
    ("kaiming_uniform_", {}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {}),
    ("kaiming_normal_", {"nonlinearity": "tanh", "mode": "fan_out"}),
    ("kaiming_normal_", {"a": 0.3}),
    ("kaiming_normal_", {"nonlinearity": "selu"}),
    ("xavier_uniform_", {}),
    ("xavier_uniform_", {"gain": 5 / 3}),
    ("xavier_normal_", {}),
    ("xavier_normal_", {"gain": math.sqrt(2)}),
]


@pytest.mark.parametrize(("fn", "params"), KAIMING_XAVIER)
@pytest.mark.parametrize("shape", [(256, 512), (64, 32, 3, 3)])
def test_kaiming_and_xavier_match_torch_std_and_bounds(
    fn: str, params: dict[str, Any], shape: tuple[int, ...]
) -> None:
    theirs = _torch(getattr(torch.nn.init, fn), shape, **params)
    ours = generate(
        resolve({"name": fn, "params": params}), shape, seed=1, layout="torch", dtype="float64"
    )
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert abs(ours.mean()) < 0.03 * theirs.std()
    if "uniform" in fn:
        assert ours.min() == pytest.approx(theirs.min(), rel=0.01)
        assert ours.max() == pytest.approx(theirs.max(), rel=0.01)
        assert np.abs(ours).max() <= np.abs(theirs).max() * 1.001


@pytest.mark.parametrize(
    ("shape", "groups"),
    [
        ((6, 4, 5), 1),
        ((16, 8, 3, 3), 1),
        ((8, 4, 3, 3, 3), 2),
        ((12, 3, 4, 4), 3),
        ((4, 8, 2, 2), 1),
    ],
)
def test_dirac_equals_torch(shape: tuple[int, ...], groups: int) -> None:
    theirs = _torch(torch.nn.init.dirac_, shape, groups=groups)
    ours = generate(
        resolve({"name": "dirac_", "params": {"groups": groups}}), shape, seed=0, dtype="float64"
    )
    np.testing.assert_array_equal(ours, theirs)
    assert (
        generate(
            resolve({"name": "dirac_", "params": {"groups": groups}}), shape, seed=0, dtype="int32"
        ).tobytes()
        == theirs.astype(np.int32).tobytes()
    )


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_eye_equals_torch(shape: tuple[int, ...]) -> None:
    theirs = _torch(torch.nn.init.eye_, shape)
    np.testing.assert_array_equal(generate(resolve("eye_"), shape, seed=0, dtype="float64"), theirs)


@pytest.mark.parametrize("shape", [(8, 20), (20, 8), (6, 4, 3, 3), (16, 2, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_torch_orthogonal_is_orthogonal_along_torch_rows(
    shape: tuple[int, ...], gain: float
) -> None:
    theirs = _torch(torch.nn.init.orthogonal_, shape, gain=gain).reshape(shape[0], -1)
    ours = generate(
        resolve({"name": "orthogonal_", "params": {"gain": gain}}), shape, seed=2, dtype="float64"
    ).reshape(shape[0], -1)
    for w in (theirs, ours):
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(gram, gain**2 * np.eye(gram.shape[0]), atol=1e-6)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"mean": 0.1, "std": 0.02, "a": -0.05, "b": 0.2},
        {"std": 0.02},
        {"mean": 1.0, "std": 1.0, "a": 0.5, "b": 3.0},
    ],
)
def test_trunc_normal_matches_torch_bounds_and_std(params: dict[str, float]) -> None:
    shape = (400, 300)
    theirs = _torch(torch.nn.init.trunc_normal_, shape, **params)
    ours = generate(
        resolve({"name": "trunc_normal_", "params": params}), shape, seed=4, dtype="float64"
    )
    a, b = params.get("a", -2.0), params.get("b", 2.0)
    assert ours.min() >= a and ours.max() <= b
    assert theirs.min() >= a and theirs.max() <= b
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.03 * theirs.std())


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_sparse_zero_count_matches_torch(sparsity: float) -> None:
    shape = (20, 30)
    theirs = _torch(torch.nn.init.sparse_, shape, sparsity=sparsity, std=0.5)
    ours = generate(
        resolve({"name": "sparse_", "params": {"sparsity": sparsity, "std": 0.5}}),
        shape,
        seed=3,
        dtype="float64",
    )
    np.testing.assert_array_equal((ours == 0).sum(axis=0), (theirs == 0).sum(axis=0))


@pytest.mark.parametrize("module", ["linear", "conv2d"])
def test_torch_default_matches_nn_layer_defaults(module: str) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(300, 200) if module == "linear" else torch.nn.Conv2d(16, 64, 3)
    theirs = layer.weight.detach().numpy().astype(np.float64)
    ours = generate(
        resolve("torch_default"), tuple(theirs.shape), seed=0, layout="torch", dtype="float64"
    )
    bound = 1 / math.sqrt(compute_fans(theirs.shape, "torch")[0])
    assert np.abs(theirs).max() <= bound and np.abs(ours).max() <= bound
    assert ours.std() == pytest.approx(theirs.std(), rel=0.05)
    assert resolve("general_rule").expected_std(*compute_fans(theirs.shape, "torch")) == (
        pytest.approx(bound / math.sqrt(3))
    )


@pytest.mark.parametrize(
    ("fn", "params", "ours_name"),
    [
        ("normal_", {"mean": 0.5, "std": 2.0}, "torch_normal"),
        ("uniform_", {"a": -1.0, "b": 3.0}, "torch_uniform"),
        ("constant_", {"val": 0.25}, "constant"),
    ],
)
def test_plain_torch_functions(fn: str, params: dict[str, float], ours_name: str) -> None:
    shape = (200, 300)
    theirs = _torch(getattr(torch.nn.init, fn), shape, **params)
    init = resolve({"name": fn, "params": params})
    assert init.name == ours_name
    ours = generate(init, shape, seed=0, dtype="float64")
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03, abs=1e-12)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.03 * max(theirs.std(), 1e-3))
