"""A run's checkpoint: everything the loop needs to carry on as if it had never stopped.

A :class:`Checkpoint` is taken between two batches — at an epoch boundary, or within a long
epoch — and holds the parameters, the optimizer's step count and state vectors, both random
streams the loop draws from (the data order: its ``bit_generator.state`` at the start of the
epoch in progress, so the epoch's permutation is drawn again; the dropout masks: its state
now), the batch losses so far, the running sums of the next epoch record, and the epoch
records and diagnostics so far. :func:`app.training.trainer.train_run` given one
(``resume=``) continues bit for bit: same curves, same final weights as an uninterrupted run
of the same spec and seed (same BLAS build and thread count).

Bytes (:meth:`Checkpoint.to_bytes`): an uncompressed ``.npz`` (NumPy only, read with
``allow_pickle=False``) of the arrays plus ``meta``, UTF-8 JSON of the scalars (the stdlib
encoder: the PCG64 state's 128-bit integers and every float round-trip exactly).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "Checkpointer"]

FORMAT = 1  # bumped when the layout changes: an older checkpoint is refused, the run restarts


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not belong to this run's network."""


class Checkpointer(Protocol):
    """Where a run's checkpoints go (the job layer implements it; see ``train_run``)."""

    def checkpoint_due(self, epoch_end: bool) -> bool:
        """Whether to take one now: at an epoch boundary (``epoch_end``) or between two
        batches of an epoch (asked after every batch: keep it cheap)."""
        ...

    def save_checkpoint(self, checkpoint: Checkpoint) -> None: ...


@dataclass
class Checkpoint:
    """The loop's state between two batches (see the module docstring).

    ``epoch``: the 1-based epoch in progress (or next), ``batch``: batches of it already done
    (0 at a boundary), ``step``: optimizer steps so far, ``epochs_done``: epochs finished."""

    epoch: int
    batch: int
    step: int
    epochs_done: int
    params: np.ndarray
    optimizer_t: int
    optimizer_state: dict[str, np.ndarray]
    losses: np.ndarray
    shuffle_state: Mapping[str, Any]
    dropout_state: Mapping[str, Any]
    run_loss: float = 0.0
    run_correct: int = 0
    run_seen: int = 0
    epochs: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def array_bytes(self) -> int:
        """Bytes of its arrays: a lower bound of :meth:`to_bytes`'s size, known without
        serializing."""
        arrays = [self.params, self.losses, *self.optimizer_state.values()]
        return sum(int(a.nbytes) for a in arrays)

    def to_bytes(self) -> bytes:
        meta = {
            "format": FORMAT,
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "epochs_done": self.epochs_done,
            "optimizer_t": self.optimizer_t,
            "optimizer_state": sorted(self.optimizer_state),
            "shuffle_state": self.shuffle_state,
            "dropout_state": self.dropout_state,
            "run_loss": self.run_loss,
            "run_correct": self.run_correct,
            "run_seen": self.run_seen,
            "epochs": self.epochs,
            "diagnostics": self.diagnostics,
        }
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "params": self.params,
            "losses": self.losses,
            **{f"opt_{name}": value for name, value in self.optimizer_state.items()},
        }
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = json.loads(arrays.pop("meta").tobytes())
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"checkpoint format {meta.get('format')!r}, not {FORMAT}")
            return cls(
                epoch=int(meta["epoch"]),
                batch=int(meta["batch"]),
                step=int(meta["step"]),
                epochs_done=int(meta["epochs_done"]),
                params=arrays["params"],
                optimizer_t=int(meta["optimizer_t"]),
                optimizer_state={n: arrays[f"opt_{n}"] for n in meta["optimizer_state"]},
                losses=arrays["losses"],
                shuffle_state=meta["shuffle_state"],
                dropout_state=meta["dropout_state"],
                run_loss=float(meta["run_loss"]),
                run_correct=int(meta["run_correct"]),
                run_seen=int(meta["run_seen"]),
                epochs=list(meta["epochs"]),
                diagnostics=dict(meta["diagnostics"]),
            )
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"unreadable checkpoint: {exc}") from exc

    def check(
        self,
        params: np.ndarray,
        state: dict[str, np.ndarray],
        total_steps: int,
        per_epoch: int,
    ) -> None:
        """Raise :class:`CheckpointError` unless this fits the run about to resume."""
        if self.params.shape != params.shape or self.params.dtype != params.dtype:
            raise CheckpointError("the checkpoint's parameters do not fit the network")
        if sorted(self.optimizer_state) != sorted(state) or any(
            v.shape != params.shape for v in self.optimizer_state.values()
        ):
            raise CheckpointError("the checkpoint's optimizer state does not fit the optimizer")
        if not (0 < self.step < total_steps and 0 <= self.batch < per_epoch):
            raise CheckpointError(f"the checkpoint's step {self.step} is outside the run")
        if self.losses.shape != (self.step,):
            raise CheckpointError("the checkpoint's losses do not match its step")
