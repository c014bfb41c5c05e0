"""What a run reports while it trains (:class:`RunReporter`) and what it returns
(:class:`RunResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["NullReporter", "RunReporter", "RunResult"]


class RunReporter(Protocol):
    """What a run tells the outside world (the job layer implements it)."""

    def should_stop(self) -> bool: ...

    def on_batch(self, epoch: int, batch: int, loss: float) -> None: ...

    def on_epoch(self, record: dict[str, Any]) -> None: ...

    def on_diagnostics(self, when: str, layers: list[dict[str, Any]]) -> None: ...


class NullReporter:
    """A :class:`RunReporter` that never cancels and keeps nothing (benchmarks, scripts);
    subclass it to keep only what you need."""

    def should_stop(self) -> bool:
        return False

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        pass

    def on_epoch(self, record: dict[str, Any]) -> None:
        pass

    def on_diagnostics(self, when: str, layers: list[dict[str, Any]]) -> None:
        pass


@dataclass
class RunResult:
    """The outcome of one run.

    ``batch_losses``: float32, one entry per optimizer step taken (a diverged run's last entry
    is the non-finite loss). ``epochs``: the records passed to ``on_epoch``.
    ``diagnostics``: ``{"init" | "epoch_N": {"epoch", "step", "loss", "layers": [...]}}``.
    ``final_*``: full-split evaluation (no dropout) after the last step; None when the run
    diverged or was cancelled, and for a missing validation split / regression accuracy.
    """

    status: str  # "succeeded" | "diverged" | "cancelled"
    steps: int
    total_steps: int
    epochs_done: int
    batch_losses: np.ndarray
    epochs: list[dict[str, Any]]
    diagnostics: dict[str, dict[str, Any]]
    seconds: float
    parameter_count: int
    final_train_loss: float | None = None
    final_train_accuracy: float | None = None
    final_val_loss: float | None = None
    final_val_accuracy: float | None = None
    diverged_at_step: int | None = None
    # The final flat parameter vector (kernels and biases, layer by layer); not in to_dict.
    params: np.ndarray | None = None

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite losses become None)."""
        return {
            "status": self.status,
            "steps": self.steps,
            "total_steps": self.total_steps,
            "epochs_done": self.epochs_done,
            "batch_losses": [v if math.isfinite(v) else None for v in self.batch_losses.tolist()],
            "epochs": self.epochs,
            "diagnostics": self.diagnostics,
            "seconds": self.seconds,
            "parameter_count": self.parameter_count,
            "final_train_loss": self.final_train_loss,
            "final_train_accuracy": self.final_train_accuracy,
            "final_val_loss": self.final_val_loss,
            "final_val_accuracy": self.final_val_accuracy,
            "diverged_at_step": self.diverged_at_step,
        }
