"""train_run end to end on small in-memory datasets (real initializer engine, float32)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from app.initializers import generate, resolve
from app.jobs.runplan import run_spec_from_dict
from app.training import RunSpec, TrainingSpecError, build_network, train_run
from app.training.datasets import Dataset
from app.training.diagnostics import distinct_columns
from app.training.trainer import _BIAS, _KERNEL, _seed


class Recorder:
    """A RunReporter that keeps everything and can ask the run to stop after N batches."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.batches: list[tuple[int, int, float]] = []
        self.epochs: list[dict[str, Any]] = []
        self.diagnostics: list[tuple[str, list[dict[str, Any]]]] = []
        self.stop_checks = 0

    def should_stop(self) -> bool:
        self.stop_checks += 1
        return self.stop_after is not None and len(self.batches) >= self.stop_after

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        self.batches.append((epoch, batch, loss))

    def on_epoch(self, record: dict[str, Any]) -> None:
        self.epochs.append(record)

    def on_diagnostics(self, when: str, layers: list[dict[str, Any]]) -> None:
        self.diagnostics.append((when, layers))


def _blobs(task: str = "multiclass", n: int = 600, d: int = 8, k: int = 3) -> Dataset:
    rng = np.random.default_rng(42)
    centers = rng.normal(0, 3, size=(k, d))
    labels = rng.integers(0, k, size=n)
    x = (centers[labels] + rng.normal(size=(n, d))).astype(np.float32)
    split = n * 4 // 5
    if task == "multiclass":
        y = labels.astype(np.int64)
        return Dataset("blobs", "multiclass", x[:split], y[:split], x[split:], y[split:], k)
    if task == "binary":
        yb = (labels % 2).astype(np.float32).reshape(-1, 1)
        return Dataset("blobs", "binary", x[:split], yb[:split], x[split:], yb[split:], 1)
    yr = (x @ rng.normal(size=(d, 2))).astype(np.float32)
    return Dataset("blobs", "regression", x[:split], yr[:split], x[split:], yr[split:], 2)


def _spec(init: Any = "he_normal", seed: int = 0, **over: Any) -> RunSpec:
    model = {"hidden_layers": [16, 8], "activation": "relu", **over.pop("model", {})}
    training = {
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "batch_size": 32,
        "epochs": 3,
        **over.pop("training", {}),
    }
    return run_spec_from_dict(
        model=model,
        training=training,
        kernel_initializer=init,
        seed=seed,
        record=over.pop("record", None),
        **over,
    )


def test_run_learns_and_reports_every_batch_epoch_and_diagnostics() -> None:
    data = _blobs()
    rep = Recorder()
    result = train_run(_spec(), data, rep)
    assert result.status == "succeeded"
    per_epoch = math.ceil(480 / 32)
    assert result.steps == result.total_steps == 3 * per_epoch == len(result.batch_losses)
    assert result.batch_losses.dtype == np.float32
    assert [b for _, b, _ in rep.batches] == list(range(1, result.steps + 1))
    assert [e for e, _, _ in rep.batches][per_epoch - 1 : per_epoch + 1] == [1, 2]
    np.testing.assert_array_equal(
        np.array([v for _, _, v in rep.batches], dtype=np.float32), result.batch_losses
    )
    assert [r["epoch"] for r in rep.epochs] == [1, 2, 3] and rep.epochs == result.epochs
    assert set(rep.epochs[0]) >= {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
    }
    assert result.final_val_accuracy is not None and result.final_val_accuracy > 0.9
    assert result.batch_losses[-1] < result.batch_losses[0] / 3
    assert [w for w, _ in rep.diagnostics] == ["init", "epoch_1", "epoch_2", "epoch_3"]
    assert set(result.diagnostics) == {"init", "epoch_1", "epoch_2", "epoch_3"}
    layers = result.diagnostics["init"]["layers"]
    assert [layer["units"] for layer in layers] == [16, 8, 3]
    assert layers[0]["distinct_units"] == 16 and layers[0]["dead_fraction"] is not None
    assert layers[0]["gradient_norm"] > 0
    assert rep.stop_checks >= result.steps
    assert result.parameter_count == 8 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3


def test_same_spec_and_seed_give_identical_curves_and_other_seeds_differ() -> None:
    data = _blobs()
    spec = _spec(model={"dropout": 0.2})
    a, b = train_run(spec, data, Recorder()), train_run(spec, data, Recorder())
    assert a.batch_losses.tobytes() == b.batch_losses.tobytes()
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a.epochs]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b.epochs]
    assert a.diagnostics == b.diagnostics
    c = train_run(_spec(seed=1, model={"dropout": 0.2}), data, Recorder())
    assert c.batch_losses.tobytes() != a.batch_losses.tobytes()


def test_bytes_do_not_depend_on_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    # batches of 100 (and a last one of 80) run as two row blocks, on one thread or two
    data = _blobs()
    spec = _spec(model={"dropout": 0.2}, training={"batch_size": 100})
    runs = []
    for threads in ("1", "2"):
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", threads)
        runs.append(train_run(spec, data, Recorder()))
    a, b = runs
    assert a.batch_losses.tobytes() == b.batch_losses.tobytes()
    assert a.params.tobytes() == b.params.tobytes()
    assert a.diagnostics == b.diagnostics
    assert a.final_val_loss == b.final_val_loss


def test_dropout_changes_the_training_curve_but_not_evaluation_mode() -> None:
    data = _blobs()
    plain = train_run(_spec(training={"epochs": 1}), data, Recorder())
    dropped = train_run(_spec(training={"epochs": 1}, model={"dropout": 0.5}), data, Recorder())
    # same initial weights (same seed) → same init diagnostics (evaluation mode, no dropout)
    assert plain.diagnostics["init"]["loss"] == dropped.diagnostics["init"]["loss"]
    assert plain.batch_losses[0] != dropped.batch_losses[0]
    assert dropped.status == "succeeded"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_huge_learning_rate_diverges_without_raising(seed: int) -> None:
    data = _blobs()
    # Linear units: ReLUs could all die at this step size and leave a finite, constant loss.
    spec = _spec(
        seed=seed,
        model={"activation": "linear"},
        training={"optimizer": {"name": "sgd", "learning_rate": 100.0}, "epochs": 5},
    )
    rep = Recorder()
    result = train_run(spec, data, rep)
    assert result.status == "diverged" and result.diverged
    assert result.diverged_at_step == result.steps < result.total_steps
    assert not math.isfinite(float(result.batch_losses[-1]))
    assert np.all(np.isfinite(result.batch_losses[:-1]))
    assert result.final_val_loss is None
    assert result.to_dict()["batch_losses"][-1] is None


def test_reporter_cancellation_stops_within_one_batch() -> None:
    data = _blobs()
    rep = Recorder(stop_after=5)
    result = train_run(_spec(), data, rep)
    assert result.status == "cancelled"
    assert result.steps == 5 == len(result.batch_losses) == len(rep.batches)
    assert result.epochs == [] and result.final_val_accuracy is None


@pytest.mark.parametrize("init", ["zeros", "ones"])
def test_constant_initialization_keeps_hidden_units_symmetric(init: str) -> None:
    data = _blobs()
    result = train_run(_spec(init, training={"epochs": 4}), data, Recorder())
    for when in ("init", "epoch_4"):
        hidden = result.diagnostics[when]["layers"][:2]
        assert [layer["distinct_units"] for layer in hidden] == [1, 1], when
    he = train_run(_spec("he_normal", training={"epochs": 4}), data, Recorder())
    assert he.diagnostics["epoch_4"]["layers"][0]["distinct_units"] == 16
    assert result.final_val_accuracy is not None and he.final_val_accuracy is not None
    assert result.final_val_accuracy < he.final_val_accuracy - 0.2


def test_zeros_initialization_loss_is_stuck_at_the_class_prior() -> None:
    data = _blobs()
    result = train_run(_spec("zeros", training={"epochs": 4}), data, Recorder())
    init = result.diagnostics["init"]["layers"]
    assert init[0]["dead_fraction"] == 1.0 and init[0]["gradient_norm"] == 0.0
    # only the output bias can learn: the loss cannot go below the label entropy
    counts = np.bincount(data.y_train, minlength=3) / len(data.y_train)
    entropy = float(-(counts * np.log(counts)).sum())
    assert result.final_train_loss == pytest.approx(entropy, abs=0.02)
    assert result.batch_losses.min() > entropy - 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_saturated_units_are_reported_for_tanh(seed: int) -> None:
    data = _blobs()
    # σ = 1e4: |w·x| < 2.65 (tanh within 0.01 of ±1 otherwise) has odds ~1e-5 per example.
    spec = _spec(
        {"name": "random_normal", "params": {"stddev": 1e4}},
        seed=seed,
        model={"activation": "tanh"},
        training={"epochs": 1},
    )
    layers = train_run(spec, data, Recorder()).diagnostics["init"]["layers"]
    assert layers[0]["saturated_fraction"] > 0.9
    assert layers[0]["dead_fraction"] is None
    small = _spec(
        {"name": "random_normal", "params": {"stddev": 0.01}},
        model={"activation": "tanh"},
        training={"epochs": 1},
    )
    assert (
        train_run(small, data, Recorder()).diagnostics["init"]["layers"][0]["saturated_fraction"]
        == 0.0
    )


def test_steps_full_batch_and_record_interval() -> None:
    data = _blobs("binary")
    spec = _spec(
        training={
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "batch_size": None,
            "epochs": None,
            "steps": 250,
        }
    )
    rep = Recorder()
    result = train_run(spec, data, rep)
    assert result.status == "succeeded" and result.steps == 250
    assert len(result.epochs) == 84 and result.epochs[-1]["step"] == 250  # every 3rd + last
    assert result.final_train_accuracy is not None and result.final_train_accuracy > 0.8


def test_drop_last_and_regression() -> None:
    data = _blobs("regression")
    spec = _spec(training={"drop_last": True, "batch_size": 100, "epochs": 2})
    result = train_run(spec, data, Recorder())
    assert result.steps == 2 * (480 // 100)
    assert result.final_train_accuracy is None and result.final_val_loss is not None
    assert result.final_val_loss < result.diagnostics["init"]["loss"]


def test_weights_come_from_the_engine_with_derived_seeds_and_per_layer_overrides() -> None:
    spec = _spec(
        "glorot_uniform",
        seed=7,
        model={"bias_initializer": {"name": "constant", "params": {"value": 0.5}}},
        layers=[None, {"kernel_initializer": "ones", "bias_initializer": "zeros"}],
    )
    loss = spec.check("multiclass", 8, 3)
    net = build_network(spec, 8, loss)
    expected0 = generate(resolve("glorot_uniform"), (8, 16), seed=_seed(7, _KERNEL, 0))
    np.testing.assert_array_equal(net.kernels[0], expected0)
    np.testing.assert_array_equal(net.biases[0], np.full(16, 0.5, np.float32))
    np.testing.assert_array_equal(net.kernels[1], np.ones((16, 8), np.float32))
    np.testing.assert_array_equal(net.biases[1], np.zeros(8, np.float32))
    expected2 = generate(resolve("glorot_uniform"), (8, 3), seed=_seed(7, _KERNEL, 2))
    np.testing.assert_array_equal(net.kernels[2], expected2)
    assert _seed(7, _KERNEL, 0) != _seed(7, _BIAS, 0) != _seed(8, _KERNEL, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": {"hidden_layers": [16, 0]}}, "model.hidden_layers[1]"),
        ({"model": {"activation": "swishy"}}, "model.activation"),
        ({"model": {"dropout": 1.0}}, "model.dropout"),
        ({"model": {"widths": [3]}}, "model.widths"),
        ({"training": {"optimizer": {"name": "adagrad"}}}, "training.optimizer.name"),
        (
            {"training": {"optimizer": {"name": "adam", "momentum": 0.9}}},
            "training.optimizer.momentum",
        ),
        (
            {"training": {"optimizer": {"name": "sgd", "nesterov": True}}},
            "training.optimizer.nesterov",
        ),
        (
            {"training": {"optimizer": {"name": "adam", "learning_rate": -1}}},
            "training.optimizer.learning_rate",
        ),
        ({"training": {"steps": 10}}, "training.steps"),
        ({"training": {"batch_size": 0}}, "training.batch_size"),
        ({"training": {"loss": "hinge"}}, "training.loss"),
        ({"layers": [{"kernel_initializer": "nope"}]}, "layers[0].kernel_initializer"),
        ({"layers": [None, None, None, {"bias_initializer": "zeros"}]}, "layers"),
        ({"record": {"diagnostics_batch_size": 5000}}, "record.diagnostics_batch_size"),
    ],
)
def test_invalid_specs_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(TrainingSpecError) as exc:
        _spec(**kwargs)
    assert exc.value.field == field


def test_unknown_scheme_and_task_mismatch_are_spec_errors() -> None:
    with pytest.raises(TrainingSpecError) as exc:
        _spec("definitely_not_an_initializer")
    assert exc.value.field == "initializer"
    spec = _spec(training={"loss": "binary_cross_entropy"})
    with pytest.raises(TrainingSpecError) as exc:
        spec.check("multiclass", 8, 3)
    assert exc.value.field == "training.loss"
    with pytest.raises(TrainingSpecError) as exc:
        _spec(model={"output_units": 4}).check("multiclass", 8, 3)
    assert exc.value.field == "model.output_units"


def test_cross_entropy_adapts_to_the_task_and_counts() -> None:
    spec = _spec(training={"loss": "cross_entropy", "epochs": 2})
    assert spec.check("binary", 8, 1).name == "binary_cross_entropy"
    assert spec.check("multiclass", 8, 10).units == 10
    assert spec.parameter_count(784, 10) == 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10
    assert spec.total_steps(1000) == 2 * 32
    result = train_run(spec, _blobs("binary"), Recorder())
    assert result.status == "succeeded" and result.final_val_accuracy is not None


def test_distinct_units_groups_rounding_noise_but_not_real_differences() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 1))
    kernel = np.repeat(base, 6, axis=1) + rng.normal(0, 1e-6, size=(50, 6))  # 6 copies + noise
    kernel[:, 4:] += rng.normal(size=(50, 2))  # two of them really differ
    assert distinct_columns(kernel.astype(np.float32), np.zeros(6, np.float32)) == 3
    bias = np.array([0, 0, 0, 1, 0, 0], np.float32)  # a different bias is a different unit
    assert distinct_columns(kernel.astype(np.float32), bias) == 4
    assert distinct_columns(np.zeros((5, 4), np.float32), np.zeros(4, np.float32)) == 1
    wide = rng.normal(size=(784, 256)).astype(np.float32)
    assert distinct_columns(wide, np.zeros(256, np.float32)) == 256


def test_float64_mode_follows_the_float32_curve() -> None:
    data = _blobs()
    spec = _spec(training={"epochs": 1})
    single = train_run(spec, data, Recorder())
    double = train_run(spec, data, Recorder(), dtype=np.float64)
    assert double.status == "succeeded"
    np.testing.assert_allclose(double.batch_losses, single.batch_losses, rtol=1e-4, atol=1e-5)
    assert double.batch_losses.tobytes() != single.batch_losses.tobytes()  # really float64


def test_empty_training_split_is_a_spec_error() -> None:
    full = _blobs()
    empty = Dataset(
        "empty", "multiclass", full.x_train[:0], full.y_train[:0], full.x_val, full.y_val, 3
    )
    with pytest.raises(TrainingSpecError):
        train_run(_spec(), empty, Recorder())


@pytest.mark.parametrize(
    ("task", "loss", "link"),
    [
        ("multiclass", "auto", "softmax"),
        ("binary", "auto", "sigmoid"),
        ("regression", "auto", "linear"),
        ("multiclass", "mse", "linear"),
    ],
)
def test_the_output_layer_is_labelled_linear_with_the_loss_link(
    task: str, loss: str, link: str
) -> None:
    data = _blobs(task)
    result = train_run(_spec(training={"loss": loss, "epochs": 1}), data, Recorder())
    for snapshot in result.diagnostics.values():
        *hidden, output = snapshot["layers"]
        # the output layer's statistics are over the logits: it is a linear layer
        assert output["name"] == "output" and output["activation"] == "linear"
        assert output["link"] == link
        assert all(h["activation"] == "relu" and h["link"] is None for h in hidden)
