"""The NumPy trainer: dense networks, losses, optimizers, diagnostics, datasets.

Imports NumPy (and the initializer engine) only. Entry point: :func:`train_run`. The names
below load lazily so that ``app.training.datasets`` imports without the trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.training.trainer import (
        RunReporter,
        RunResult,
        RunSpec,
        TrainingSpecError,
        build_network,
        train_run,
    )

__all__ = [
    "NullReporter",
    "RunReporter",
    "RunResult",
    "RunSpec",
    "TrainingSpecError",
    "build_network",
    "train_run",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("app.training.trainer"), name)
    raise AttributeError(f"module 'app.training' has no attribute {name!r}")
