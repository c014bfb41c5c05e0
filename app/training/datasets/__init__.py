"""Datasets for the trainer: IDX (MNIST, Fashion-MNIST), synthetic 2-D sets, uploaded ``.npz``.

Pure NumPy + stdlib. See ``docs/datasets.md``.
"""

from app.training.datasets.base import TASKS, Dataset, DatasetError, DatasetUnavailableError, Task

__all__ = ["TASKS", "Dataset", "DatasetError", "DatasetUnavailableError", "Task"]
