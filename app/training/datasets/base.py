"""The dataset value object and the errors every loader raises (pure NumPy + stdlib)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Task = Literal["multiclass", "binary", "regression"]
TASKS: tuple[str, ...] = ("multiclass", "binary", "regression")


class DatasetError(ValueError):
    """Invalid dataset parameters or uploaded data.

    ``field`` is a dotted path inside the job's ``dataset`` object (or the upload key, e.g.
    ``"x_train"``), ``value`` the offending value, ``msg`` the reason without the path.
    """

    def __init__(self, field: str, value: Any, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.value = value
        self.msg = msg


class DatasetUnavailableError(DatasetError):
    """The dataset's files are missing and cannot be downloaded; ``msg`` says where to put which."""


def _empty_x(d: int) -> npt.NDArray[np.float32]:
    return np.zeros((0, d), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset, ready for the trainer.

    - ``x_*``: float32 ``(n, d)``, C-contiguous.
    - ``y_*``: multiclass → int64 labels ``(n,)`` in ``[0, n_outputs)``; binary → float32
      ``(n, 1)`` of 0/1; regression → float32 ``(n, k)``.
    - ``n_outputs``: classes (multiclass), 1 (binary), k (regression).
    - The validation split may be empty (``len(x_val) == 0``); the test split is only
      loaded on request (IDX ``"test": true``; the synthetic sets' ``n_test``) and is empty
      otherwise.
    """

    name: str
    task: Task
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[Any]
    x_val: npt.NDArray[np.float32]
    y_val: npt.NDArray[Any]
    n_outputs: int
    x_test: npt.NDArray[np.float32] | None = field(default=None)
    y_test: npt.NDArray[Any] | None = field(default=None)

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int | None:
        """Number of classes for classification (2 for binary), None for regression."""
        if self.task == "multiclass":
            return self.n_outputs
        if self.task == "binary":
            return 2
        return None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.x_val.shape[0])

    @property
    def n_test(self) -> int:
        return 0 if self.x_test is None else int(self.x_test.shape[0])

    def summary(self) -> dict[str, Any]:
        """Sizes and shapes, JSON-ready."""
        return {
            "name": self.name,
            "task": self.task,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "input_dim": self.input_dim,
            "n_outputs": self.n_outputs,
            "n_classes": self.n_classes,
        }
