"""Checkpoint and resume at the trainer level: a run stopped at a checkpoint (an epoch
boundary or within an epoch), serialized, restored and continued gives bit-identical batch
losses, epoch records, diagnostics, final metrics and final weights to an uninterrupted run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.jobs.runplan import run_spec_from_dict
from app.training import NullReporter, RunResult, RunSpec, train_run
from app.training.checkpoint import Checkpoint, CheckpointError
from app.training.datasets import Dataset


class Keeper:
    """A Checkpointer taking one every ``every`` batches (mid-epoch) and at every boundary,
    keeping the bytes (serialized at once: the arrays are the live ones)."""

    def __init__(self, every: int = 5) -> None:
        self.every = every
        self.batches = 0
        self.saved: list[bytes] = []

    def checkpoint_due(self, epoch_end: bool) -> bool:
        if epoch_end:
            return True
        self.batches += 1
        return self.batches % self.every == 0

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.saved.append(checkpoint.to_bytes())


class Records(NullReporter):
    def __init__(self) -> None:
        self.batches: list[tuple[int, int, float]] = []
        self.epochs: list[dict[str, Any]] = []
        self.diagnostics: list[str] = []

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        self.batches.append((epoch, batch, loss))

    def on_epoch(self, record: dict[str, Any]) -> None:
        self.epochs.append(record)

    def on_diagnostics(self, when: str, layers: list[dict[str, Any]]) -> None:
        self.diagnostics.append(when)


def blobs(n: int = 500, d: int = 6, k: int = 3) -> Dataset:
    rng = np.random.default_rng(7)
    centers = rng.normal(0, 2, size=(k, d))
    labels = rng.integers(0, k, size=n)
    x = (centers[labels] + rng.normal(size=(n, d))).astype(np.float32)
    y = labels.astype(np.int64)
    return Dataset("blobs", "multiclass", x[:400], y[:400], x[400:], y[400:], k)


def spec(optimizer: dict[str, Any], **training: Any) -> RunSpec:
    record = training.pop("record", None)
    length = {} if "steps" in training else {"epochs": 4}
    return run_spec_from_dict(
        model={"hidden_layers": [12, 8], "activation": "relu", "dropout": 0.2},
        training={"optimizer": optimizer, "batch_size": 32, **length, **training},
        kernel_initializer="he_normal",
        seed=5,
        record=record,
    )


def without_seconds(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def assert_identical(a: RunResult, b: RunResult) -> None:
    assert a.status == b.status == "succeeded"
    assert a.steps == b.steps and a.epochs_done == b.epochs_done
    assert a.batch_losses.tobytes() == b.batch_losses.tobytes()
    assert without_seconds(a.epochs) == without_seconds(b.epochs)
    assert a.diagnostics == b.diagnostics
    assert a.params is not None and b.params is not None
    assert a.params.tobytes() == b.params.tobytes()
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert getattr(a, f"final_{name}") == getattr(b, f"final_{name}")


CASES = [
    pytest.param({"name": "adam", "learning_rate": 0.01}, {}, id="adam"),
    pytest.param({"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}, {}, id="sgd-momentum"),
    pytest.param(
        {"name": "rmsprop", "centered": True, "momentum": 0.5}, {"drop_last": True}, id="rmsprop"
    ),
    pytest.param(
        {"name": "adamw"}, {"record": {"eval_every": 2}, "epochs": 5}, id="adamw-eval-every-2"
    ),
    pytest.param({"name": "adam"}, {"steps": 45}, id="steps"),
]


@pytest.mark.parametrize(("optimizer", "training"), CASES)
def test_resuming_from_any_checkpoint_is_bit_identical(
    optimizer: dict[str, Any], training: dict[str, Any]
) -> None:
    data = blobs()
    s = spec(optimizer, **training)
    plain = train_run(s, data, NullReporter())
    keeper = Keeper(every=4)
    checked = train_run(s, data, NullReporter(), checkpointer=keeper)
    # Taking checkpoints changes nothing.
    assert_identical(plain, checked)
    checkpoints = [Checkpoint.from_bytes(b) for b in keeper.saved]
    assert any(c.batch == 0 for c in checkpoints) and any(c.batch > 0 for c in checkpoints)
    for ckpt in checkpoints:
        rec = Records()
        resumed = train_run(s, data, rec, resume=Checkpoint.from_bytes(ckpt.to_bytes()))
        assert_identical(plain, resumed)
        # The resumed run reports only what the checkpoint did not hold.
        assert [step for _, step, _ in rec.batches] == list(range(ckpt.step + 1, plain.steps + 1))
        assert len(rec.epochs) == len(plain.epochs) - len(ckpt.epochs)
        assert "init" not in rec.diagnostics


def test_a_checkpoint_of_another_network_or_garbage_is_refused() -> None:
    data = blobs()
    keeper = Keeper()
    train_run(spec({"name": "adam"}), data, NullReporter(), checkpointer=keeper)
    ckpt = Checkpoint.from_bytes(keeper.saved[0])
    with pytest.raises(CheckpointError, match="optimizer state"):
        train_run(spec({"name": "sgd", "momentum": 0.9}), data, NullReporter(), resume=ckpt)
    other = run_spec_from_dict(
        model={"hidden_layers": [5]},
        training={"optimizer": "adam", "batch_size": 32, "epochs": 4},
        kernel_initializer="he_normal",
        seed=5,
    )
    with pytest.raises(CheckpointError, match="parameters"):
        train_run(other, data, NullReporter(), resume=ckpt)
    with pytest.raises(CheckpointError, match="unreadable"):
        Checkpoint.from_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        Checkpoint.from_bytes(keeper.saved[0][:-100])
