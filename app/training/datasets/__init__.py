"""Datasets for the trainer: IDX (MNIST, Fashion-MNIST), synthetic 2-D sets, uploaded ``.npz``.

Pure NumPy + stdlib. See ``docs/datasets.md``.
"""

from app.training.datasets.base import TASKS, Dataset, DatasetError, DatasetUnavailableError, Task
from app.training.datasets.registry import (
    IDX_PARAMS,
    UPLOAD,
    UPLOAD_PARAMS,
    check_dataset,
    list_datasets,
    load_dataset,
)
from app.training.datasets.upload import (
    DatasetTooLargeError,
    dataset_from_arrays,
    describe_npz,
    parse_npz,
    task_fits,
)

__all__ = [
    "IDX_PARAMS",
    "TASKS",
    "UPLOAD",
    "UPLOAD_PARAMS",
    "Dataset",
    "DatasetError",
    "DatasetTooLargeError",
    "DatasetUnavailableError",
    "Task",
    "check_dataset",
    "dataset_from_arrays",
    "describe_npz",
    "list_datasets",
    "load_dataset",
    "parse_npz",
    "task_fits",
]
