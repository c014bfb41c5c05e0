"""Activations against torch (forward values and autograd derivatives, float64)."""

from __future__ import annotations

import numpy as np
import pytest

from app.training.activations import ACTIVATIONS, Activation

torch = pytest.importorskip("torch")
F = torch.nn.functional

CASES = [
    (Activation("relu"), F.relu),
    (Activation("leaky_relu"), lambda t: F.leaky_relu(t, 0.01)),
    (Activation("leaky_relu", negative_slope=0.2), lambda t: F.leaky_relu(t, 0.2)),
    (Activation("elu"), lambda t: F.elu(t, 1.0)),
    (Activation("elu", alpha=0.5), lambda t: F.elu(t, 0.5)),
    (Activation("selu"), F.selu),
    (Activation("gelu"), lambda t: F.gelu(t, approximate="tanh")),
    (Activation("tanh"), torch.tanh),
    (Activation("sigmoid"), torch.sigmoid),
    (Activation("linear"), lambda t: t),
]


def test_every_activation_is_covered() -> None:
    assert {a.name for a, _ in CASES} == set(ACTIVATIONS)


@pytest.fixture
def z() -> np.ndarray:
    rng = np.random.default_rng(3)
    out = rng.normal(0, 3, size=(16, 9))
    out[0, :3] = [-50.0, 50.0, 1e-3]  # saturation / overflow territory
    return out


@pytest.mark.parametrize(("act", "ref"), CASES, ids=lambda c: str(getattr(c, "config", c)))
def test_forward_matches_torch(act: Activation, ref, z: np.ndarray) -> None:
    out = np.empty_like(z)
    act.forward(z, out)
    expected = ref(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("act", "ref"), CASES, ids=lambda c: str(getattr(c, "config", c)))
def test_backward_matches_torch_autograd(act: Activation, ref, z: np.ndarray) -> None:
    z = z[np.abs(z) > 1e-6].reshape(-1, 1)  # relu-like kinks: derivative at 0 is a convention
    da = np.random.default_rng(4).normal(size=z.shape)
    a = np.empty_like(z)
    act.forward(z, a)
    dz = np.empty_like(z)
    act.backward(z, a, da, dz)
    t = torch.from_numpy(z).requires_grad_(True)
    ref(t).backward(torch.from_numpy(da))
    np.testing.assert_allclose(dz, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("act", "ref"), CASES[:1] + CASES[3:4] + CASES[7:9])
def test_backward_may_overwrite_its_upstream_gradient(act: Activation, ref, z: np.ndarray) -> None:
    a = np.empty_like(z)
    act.forward(z, a)
    da = np.ones_like(z)
    expected = act.backward(z, a, da.copy(), np.empty_like(z))
    act.backward(z, a, da, da)  # in place, as the network calls it
    np.testing.assert_array_equal(da, expected)


def test_float32_forward_stays_float32_and_finite() -> None:
    z = np.array([[-200.0, -20.0, 0.0, 20.0, 200.0]], dtype=np.float32)
    for name in ACTIVATIONS:
        out = np.empty_like(z)
        Activation(name).forward(z, out)
        assert out.dtype == np.float32
        assert np.all(np.isfinite(out)), name
