"""Parity with torch==2.13.0: same initial weights, same batches → same losses for 20 steps.

Our network's initial weights are exported into ``torch.nn.Linear`` layers (weight = our
kernel transposed: Keras ``(in, out)`` → torch ``(out, in)``), both sides see the batches
in order (no shuffling) and train in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.jobs.runplan import run_spec_from_dict
from app.training import NullReporter, RunSpec, build_network, train_run
from app.training.datasets import Dataset

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.conformance


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    # tiny matrices: threads only add contention on a loaded 2-core box
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


STEPS, BATCH, N, D = 20, 16, 200, 12  # 200 / 16 → 13 batches per epoch (last one partial)

OPTIMIZERS: dict[str, tuple[dict[str, Any], Any]] = {
    "sgd_nesterov": (
        {
            "name": "sgd",
            "learning_rate": 0.05,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 1e-3,
        },
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    ),
    "sgd_momentum": (
        {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "adam": (
        {"name": "adam", "learning_rate": 0.01},
        lambda p: torch.optim.Adam(p, lr=0.01),
    ),
    "adamw": (
        {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.05},
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05),
    ),
    "rmsprop": (
        {"name": "rmsprop", "learning_rate": 0.005, "momentum": 0.5, "centered": True},
        lambda p: torch.optim.RMSprop(p, lr=0.005, momentum=0.5, centered=True),
    ),
}

TORCH_ACT = {
    "relu": lambda: torch.nn.ReLU(),
    "tanh": lambda: torch.nn.Tanh(),
    "gelu": lambda: torch.nn.GELU(approximate="tanh"),
    "elu": lambda: torch.nn.ELU(),
    "sigmoid": lambda: torch.nn.Sigmoid(),
}


def _dataset(task: str) -> Dataset:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(N, D)).astype(np.float32)
    if task == "multiclass":
        y = (x[:, :4].argmax(axis=1)).astype(np.int64)
        return Dataset("t", task, x, y, x[:0], y[:0], 4)
    if task == "binary":
        yb = (x[:, 0] + x[:, 1] > 0).astype(np.float32).reshape(-1, 1)
        return Dataset("t", task, x, yb, x[:0], yb[:0], 1)
    yr = np.tanh(x @ rng.normal(size=(D, 3))).astype(np.float32)
    return Dataset("t", task, x, yr, x[:0], yr[:0], 3)


def _torch_losses(spec: RunSpec, data: Dataset, make_opt: Any) -> np.ndarray:
    torch.manual_seed(0)
    loss = spec.check(data.task, data.input_dim, data.n_outputs)
    net = build_network(spec, data.input_dim, loss)
    modules: list[Any] = []
    for i in range(net.n_layers):
        fan_in, fan_out = net.shapes[i]
        lin = torch.nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(net.kernels[i].T.copy()))
            lin.bias.copy_(torch.from_numpy(net.biases[i].copy()))
        modules.append(lin)
        if i < net.n_layers - 1:
            modules.append(TORCH_ACT[spec.activation.name]())
    model = torch.nn.Sequential(*modules)
    opt = make_opt(model.parameters())
    if data.task == "multiclass":
        crit: Any = torch.nn.CrossEntropyLoss()
    elif data.task == "binary":
        crit = torch.nn.BCEWithLogitsLoss()
    else:
        crit = torch.nn.MSELoss()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    out = []
    b = 0
    while len(out) < STEPS:
        lo = b * BATCH
        if lo >= N:
            b, lo = 0, 0
        xb, yb = x[lo : lo + BATCH], y[lo : lo + BATCH]
        opt.zero_grad()
        value = crit(model(xb), yb)
        value.backward()
        opt.step()
        out.append(value.item())
        b += 1
    return np.array(out)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize(
    ("task", "activation"),
    [("multiclass", "relu"), ("binary", "tanh"), ("regression", "gelu")],
)
def test_first_steps_match_torch(opt_name: str, task: str, activation: str) -> None:
    ours_opt, make_opt = OPTIMIZERS[opt_name]
    spec = run_spec_from_dict(
        model={"hidden_layers": [32, 16], "activation": activation},
        training={"optimizer": ours_opt, "batch_size": BATCH, "steps": STEPS, "shuffle": False},
        record={"diagnostics": False},
        kernel_initializer="glorot_uniform",
        bias_initializer={"name": "random_uniform", "params": {"minval": -0.1, "maxval": 0.1}},
        seed=3,
    )
    data = _dataset(task)

    result = train_run(spec, data, NullReporter())
    assert result.status == "succeeded" and result.steps == STEPS
    expected = _torch_losses(spec, data, make_opt)
    np.testing.assert_allclose(result.batch_losses, expected, rtol=1e-5, atol=1e-6)
    assert expected[-1] < expected[0]  # both actually trained


@pytest.mark.parametrize("activation", ["elu", "sigmoid"])
def test_other_activations_match_torch_with_adam(activation: str) -> None:
    test_first_steps_match_torch("adam", "multiclass", activation)
