"""Optimizers against torch.optim 2.13 (same parameters, same gradient function, float64)."""

from __future__ import annotations

import numpy as np
import pytest

from app.training.optimizers import OptimizerSpec, make_optimizer

torch = pytest.importorskip("torch")

CASES = [
    (OptimizerSpec("sgd", 0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    (
        OptimizerSpec("sgd", 0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    (
        OptimizerSpec("sgd", 0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    ),
    (OptimizerSpec("adam", 0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    (
        OptimizerSpec("adam", 0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ),
    (
        OptimizerSpec("adamw", 0.01, weight_decay=0.01),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01),
    ),
    (
        OptimizerSpec("adamw", 0.01, weight_decay=0.3, beta2=0.9),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.3, betas=(0.9, 0.9)),
    ),
    (OptimizerSpec("rmsprop", 0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    (
        OptimizerSpec("rmsprop", 0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
        lambda p: torch.optim.RMSprop(
            p, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01
        ),
    ),
    (
        OptimizerSpec("rmsprop", 0.01, momentum=0.9),
        lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.9),
    ),
]


def _grad(p: np.ndarray, a: np.ndarray, step: int) -> np.ndarray:
    """A gradient that depends on the parameters (a noisy quadratic bowl)."""
    return a @ p + np.sin(3.0 * p + step)


@pytest.mark.parametrize(("spec", "make_torch"), CASES, ids=lambda c: str(c)[:60])
def test_trajectory_matches_torch(spec: OptimizerSpec, make_torch) -> None:
    rng = np.random.default_rng(0)
    n = 12
    a = rng.normal(size=(n, n))
    a = a @ a.T / n
    p0 = rng.normal(size=n)
    params, grads = p0.copy(), np.zeros(n)
    opt = make_optimizer(spec, params, grads)
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = make_torch([tp])
    for step in range(25):
        grads[:] = _grad(params, a, step)
        opt.step()
        tp.grad = torch.from_numpy(_grad(tp.detach().numpy().copy(), a, step))
        topt.step()
        np.testing.assert_allclose(params, tp.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert not np.allclose(params, p0)  # it moved


def test_float32_adam_step_allocates_no_new_state() -> None:
    params = np.ones(1000, dtype=np.float32)
    grads = np.full(1000, 0.5, dtype=np.float32)
    opt = make_optimizer(OptimizerSpec("adam", 0.1), params, grads)
    ids = {k: id(v) for k, v in opt.state.items()}
    before = params.copy()
    opt.step()
    assert {k: id(v) for k, v in opt.state.items()} == ids
    assert params.dtype == np.float32
    # first Adam step moves every parameter by ~lr against the gradient sign
    np.testing.assert_allclose(before - params, 0.1, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_threaded_step_is_bitwise_identical_to_one_thread(name: str) -> None:
    spec = OptimizerSpec(
        name, 0.01, momentum=0.9 if name in ("sgd", "rmsprop") else 0.0, weight_decay=0.01
    )
    rng = np.random.default_rng(9)
    one = np.zeros(1, np.float32)
    # enough parameters for four parts (Adam's compiled pass splits only from 2^20 a part)
    p0 = rng.normal(size=4 * make_optimizer(spec, one, one.copy()).min_part).astype(np.float32)
    runs = []
    for threads in (1, 4):
        params, grads = p0.copy(), np.empty_like(p0)
        opt = make_optimizer(spec, params, grads, threads=threads)
        assert len(opt._parts) == threads
        for step in range(3):
            grads[:] = np.sin(params * (step + 1))
            opt.step()
        runs.append(params)
    assert runs[0].tobytes() == runs[1].tobytes()
    assert not np.array_equal(runs[0], p0)
