"""The NumPy trainer: dense networks, losses, optimizers, diagnostics, datasets.

Imports NumPy (and the initializer engine) only. Entry point: :func:`train_run`. The names
below load lazily so that ``app.training.datasets`` imports without the trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.training.results import NullReporter, RunReporter, RunResult
    from app.training.spec import RunSpec, TrainingSpecError
    from app.training.trainer import build_network, train_run, warm_up

__all__ = [
    "NullReporter",
    "RunReporter",
    "RunResult",
    "RunSpec",
    "TrainingSpecError",
    "build_network",
    "train_run",
    "warm_up",
]


_MODULES = {
    "NullReporter": "app.training.results",
    "RunReporter": "app.training.results",
    "RunResult": "app.training.results",
    "RunSpec": "app.training.spec",
    "TrainingSpecError": "app.training.spec",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(_MODULES.get(name, "app.training.trainer")), name)
    raise AttributeError(f"module 'app.training' has no attribute {name!r}")
