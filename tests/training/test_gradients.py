"""Finite-difference gradient checks (float64) for activations, losses, dense layers, dropout."""

from __future__ import annotations

import numpy as np
import pytest

from app.training.activations import ACTIVATIONS, Activation
from app.training.losses import Loss
from app.training.network import Network

EPS = 1e-6


def _central_diff(f, x: np.ndarray) -> np.ndarray:
    """d f / d x by central differences, perturbing ``x`` in place."""
    grad = np.zeros_like(x)
    flat, g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        g[i] = (up - down) / (2 * EPS)
    return grad


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_finite_differences(name: str) -> None:
    act = Activation(name)
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(6, 5))
    z[np.abs(z) < 1e-3] = 0.5  # away from the ReLU kink
    da = rng.normal(size=z.shape)
    out = np.empty_like(z)

    def objective() -> float:
        return float(np.sum(da * act.forward(z, out)))

    expected = _central_diff(objective, z)
    a = act.forward(z, np.empty_like(z))
    got = act.backward(z, a, da, np.empty_like(z))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


LOSS_CASES = [
    ("softmax_cross_entropy", "multiclass", 4),
    ("softmax_cross_entropy", "binary", 2),
    ("binary_cross_entropy", "binary", 1),
    ("mse", "multiclass", 4),
    ("mse", "binary", 1),
    ("mse", "regression", 3),
]


def _targets(task: str, units: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if task == "multiclass":
        return rng.integers(0, units, size=n).astype(np.int64)
    if task == "binary":
        return rng.integers(0, 2, size=(n, 1)).astype(np.float32)
    return rng.normal(size=(n, units)).astype(np.float32)


@pytest.mark.parametrize(("name", "task", "units"), LOSS_CASES)
def test_loss_gradient_matches_finite_differences(name: str, task: str, units: int) -> None:
    loss = Loss(name, task, units)
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, size=(7, units))
    target = loss.targets(_targets(task, 4 if task == "multiclass" else units, 7, rng), np.float64)
    scratch = np.empty_like(z)
    expected = _central_diff(lambda: loss(z, target, scratch, backward=False), z)
    grad = np.empty_like(z)
    loss(z, target, grad, backward=True)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-9)


def test_loss_value_is_stable_for_huge_logits() -> None:
    z = np.array([[1e4, -1e4, 0.0]])
    ce = Loss("softmax_cross_entropy", "multiclass", 3)
    assert ce(z, np.array([1]), np.empty_like(z)) == pytest.approx(2e4)
    bce = Loss("binary_cross_entropy", "binary", 1)
    zb = np.array([[1e4], [-1e4]])
    assert bce(zb, np.array([[0.0], [1.0]]), np.empty_like(zb)) == pytest.approx(1e4)


def _network(activation: str, loss: Loss, *, dropout: float = 0.0) -> Network:
    net = Network(
        (5, 4, 3, loss.units), Activation(activation), loss, dropout=dropout, dtype=np.float64
    )
    net.params[:] = np.random.default_rng(2).normal(0, 0.8, size=net.n_params)
    return net


# 8 rows: one row block; 70 rows: two (Network.row_blocks), whose gradients are summed.
@pytest.mark.parametrize("rows", [8, 70])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("name", "task", "units"), [LOSS_CASES[0], LOSS_CASES[2], LOSS_CASES[5]])
def test_dense_network_gradients_match_finite_differences(
    activation: str, name: str, task: str, units: int, rows: int
) -> None:
    loss = Loss(name, task, units)
    net = _network(activation, loss)
    assert len(net.row_blocks(rows)) == (1 if rows == 8 else 2)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(rows, 5))
    target = loss.targets(_targets(task, units, rows, rng), np.float64)
    buf = net.buffers(rows)

    def objective() -> float:
        z = net.forward(x, buf, train=False)
        return loss(z, target, np.empty_like(z), backward=False)

    expected = _central_diff(objective, net.params)
    net.loss_and_grad(x, target, train=False)
    np.testing.assert_allclose(net.grads, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("rows", [8, 70])
def test_dropout_gradients_match_finite_differences_with_a_fixed_mask(rows: int) -> None:
    loss = Loss("softmax_cross_entropy", "multiclass", 3)
    net = _network("tanh", loss, dropout=0.5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(rows, 5))
    target = loss.targets(rng.integers(0, 3, size=rows), np.float64)
    masks = [(rng.random((rows, h)) < 0.5) / 0.5 for h in (4, 3)]
    buf = net.buffers(rows)

    def objective() -> float:
        z = net.forward(x, buf, train=True, masks=masks)
        return loss(z, target, np.empty_like(z), backward=False)

    expected = _central_diff(objective, net.params)
    net.loss_and_grad(x, target, train=True, masks=masks)
    np.testing.assert_allclose(net.grads, expected, rtol=1e-5, atol=1e-8)
    # the mask really is applied: dropped units receive no gradient through their kernel column
    assert np.any(masks[0] == 0)


def test_dropout_is_inverted_and_off_in_evaluation() -> None:
    loss = Loss("mse", "regression", 2)
    net = Network((3, 2000, 2), Activation("linear"), loss, dropout=0.3, dtype=np.float64)
    net.params[:] = 1.0
    x = np.ones((4, 3))
    buf = net.buffers(4)
    rng = np.random.default_rng(7)
    train_out = net.forward(x, buf, train=True, rng=rng).copy()
    kept = buf.mask[0] > 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(buf.mask[0][kept], 1 / 0.7)
    eval_out = net.forward(x, buf, train=False)
    np.testing.assert_allclose(eval_out, 4 * 2000 + 1)
    # inverted scaling keeps the expectation: the training output is close to the eval one
    np.testing.assert_allclose(train_out, eval_out, rtol=0.05)
