"""Uploaded ``.npz`` datasets: safe parsing and validation (no pickle, zip-bomb guarded).

An upload is a NumPy ``.npz`` (``np.savez`` or ``np.savez_compressed``) with keys
``x_train``, ``y_train`` and optionally ``x_val``, ``y_val``:

- ``x_*``: 2-D ``(n, d)`` of a real numeric dtype (bool, int, uint, float); cast to float32
  and required finite.
- ``y_*``: integer labels ``(n,)`` in ``[0, n_classes)`` → multiclass; or float targets
  ``(n,)`` / ``(n, k)`` → regression; ``task="binary"`` turns 0/1 labels into a sigmoid
  target ``(n, 1)``.

Every limit is checked on the zip directory and the ``.npy`` headers before anything is
decompressed into memory.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from app.training.datasets.base import TASKS, Dataset, DatasetError, Task

KEYS = ("x_train", "y_train", "x_val", "y_val")
REQUIRED = ("x_train", "y_train")
MAX_CLASSES = 10_000
# Decompressed size allowed per compressed byte of the upload (real float data compresses
# at most ~10x; a zip bomb by far more) and in absolute terms.
MAX_EXPANSION = 64
MAX_UNCOMPRESSED_BYTES = 2 << 30


class DatasetTooLargeError(DatasetError):
    """An upload over the configured size limits (the API answers 413)."""


def _npy_header(fp: Any, key: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, fortran_order, dtype) from a ``.npy`` header, without reading the data."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fp)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(fp)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(key, None, f"not a valid .npy array: {exc}") from exc
    raise DatasetError(key, None, f".npy format version {version} is not supported")


def parse_npz(
    data: bytes, *, max_bytes: int, max_uncompressed_bytes: int | None = None
) -> dict[str, npt.NDArray[Any]]:
    """Load and check the arrays of an uploaded ``.npz``; raises :class:`DatasetError`.

    ``max_bytes`` bounds the upload; the decompressed total is bounded by
    ``max_uncompressed_bytes`` (default ``min(64 × len(data), 2 GiB)``, at least
    ``max_bytes``), read from the zip directory before decompressing. Pickled (object)
    arrays are refused naming the key; ``allow_pickle=False`` is also passed to NumPy.
    """
    if len(data) > max_bytes:
        raise DatasetTooLargeError(
            "file", len(data), f"upload of {len(data)} bytes is over the limit of {max_bytes}"
        )
    limit = max_uncompressed_bytes
    if limit is None:
        limit = min(max(MAX_EXPANSION * len(data), max_bytes), MAX_UNCOMPRESSED_BYTES)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DatasetError(
            "file", None, "not an .npz archive (expected a zip of .npy files)"
        ) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > 2 * len(KEYS):
            raise DatasetError(
                "file", len(infos), f"{len(infos)} members; an upload has at most 4 arrays"
            )
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            key = info.filename.removesuffix(".npy")
            if key not in KEYS or not info.filename.endswith(".npy"):
                raise DatasetError(
                    info.filename, None, f"unexpected member; allowed: {', '.join(KEYS)}"
                )
            if key in members:
                raise DatasetError(key, None, "appears twice in the archive")
            members[key] = info
        for key in REQUIRED:
            if key not in members:
                raise DatasetError(key, None, "missing (required: x_train, y_train)")
        if ("x_val" in members) != ("y_val" in members):
            raise DatasetError(
                "x_val" if "x_val" in members else "y_val", None, "x_val and y_val come together"
            )
        total = sum(i.file_size for i in members.values())
        if total > limit:
            raise DatasetTooLargeError(
                "file", total, f"arrays decompress to {total} bytes, over the limit of {limit}"
            )
        arrays: dict[str, npt.NDArray[Any]] = {}
        for key, info in members.items():
            try:
                with zf.open(info) as fp:
                    shape, fortran, dtype = _npy_header(fp, key)
                    if dtype.hasobject:
                        raise DatasetError(
                            key, str(dtype), "object (pickled) arrays are not accepted"
                        )
                    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if need > info.file_size:
                        raise DatasetError(
                            key, list(shape), "array header claims more data than the file holds"
                        )
                with zf.open(info) as fp:
                    arr = np.lib.format.read_array(fp, allow_pickle=False)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                if isinstance(exc, DatasetError):
                    raise
                raise DatasetError(key, None, f"cannot read array: {exc}") from exc
            if fortran:
                arr = np.ascontiguousarray(arr)
            arrays[key] = arr
    return arrays


def _check_x(key: str, x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    if x.ndim != 2:
        raise DatasetError(key, list(x.shape), f"must be 2-D (n, features), got {x.ndim}-D")
    if x.shape[1] < 1:
        raise DatasetError(key, list(x.shape), "must have at least one feature")
    if x.dtype.kind not in "biuf":
        raise DatasetError(key, str(x.dtype), "must be a real numeric array (float, int or bool)")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow → inf, reported below
        out = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise DatasetError(key, bad, f"contains NaN or inf (first in row {bad}) after float32 cast")
    return out


def _infer_task(y: npt.NDArray[Any]) -> Task:
    if y.dtype.kind in "biu":
        return "multiclass"
    if y.dtype.kind == "f":
        return "regression"
    raise DatasetError("y_train", str(y.dtype), "must be integer labels or float targets")


def _check_y(key: str, y: npt.NDArray[Any], n: int, task: Task) -> npt.NDArray[Any]:
    if len(y) != n:
        x_key = "x_" + key.split("_", 1)[1]
        raise DatasetError(key, len(y), f"has {len(y)} rows but {x_key} has {n}")
    if y.dtype.kind not in "biuf":
        raise DatasetError(key, str(y.dtype), "must be integer labels or float targets")
    if task == "regression":
        if y.ndim not in (1, 2):
            raise DatasetError(key, list(y.shape), "regression targets must be (n,) or (n, k)")
        out = np.ascontiguousarray(y.reshape(n, -1), dtype=np.float32)
        if not np.isfinite(out).all():
            raise DatasetError(key, None, "contains NaN or inf")
        return out
    flat = y.reshape(n) if y.ndim == 2 and y.shape[1] == 1 else y
    if flat.ndim != 1:
        raise DatasetError(key, list(y.shape), "class labels must be 1-D (n,)")
    if flat.dtype.kind == "f" and (
        not np.isfinite(flat).all() or not np.array_equal(flat, np.round(flat))
    ):
        raise DatasetError(key, None, "class labels must be whole numbers")
    labels = flat.astype(np.int64)
    if labels.size and int(labels.min()) < 0:
        raise DatasetError(key, int(labels.min()), "class labels must be >= 0")
    if task == "binary":
        if labels.size and int(labels.max()) > 1:
            raise DatasetError(key, int(labels.max()), "binary labels must be 0 or 1")
        return labels.astype(np.float32).reshape(n, 1)
    if labels.size and int(labels.max()) >= MAX_CLASSES:
        raise DatasetError(key, int(labels.max()), f"class labels must be < {MAX_CLASSES}")
    return labels


def dataset_from_arrays(
    name: str, arrays: Mapping[str, npt.NDArray[Any]], task: str | None = None
) -> Dataset:
    """A validated :class:`Dataset` from upload arrays (see the module doc for the rules).

    ``task`` None infers it from ``y_train``'s dtype: integer → multiclass (classes =
    max label + 1 over train and val), float → regression.
    """
    if task is not None and task not in TASKS:
        raise DatasetError("task", task, f"must be one of {', '.join(TASKS)}")
    for key in REQUIRED:
        if key not in arrays:
            raise DatasetError(key, None, "missing (required: x_train, y_train)")
    x_train = _check_x("x_train", arrays["x_train"])
    if len(x_train) < 1:
        raise DatasetError("x_train", 0, "must have at least one row")
    the_task: Task = _infer_task(arrays["y_train"]) if task is None else task  # type: ignore[assignment]
    y_train = _check_y("y_train", arrays["y_train"], len(x_train), the_task)
    if "x_val" in arrays:
        x_val = _check_x("x_val", arrays["x_val"])
        if x_val.shape[1] != x_train.shape[1]:
            raise DatasetError(
                "x_val",
                x_val.shape[1],
                f"has {x_val.shape[1]} features, x_train {x_train.shape[1]}",
            )
        if "y_val" not in arrays:
            raise DatasetError("y_val", None, "x_val and y_val come together")
        y_val = _check_y("y_val", arrays["y_val"], len(x_val), the_task)
    else:
        x_val = np.zeros((0, x_train.shape[1]), dtype=np.float32)
        y_val = y_train[:0].copy()
    if the_task == "multiclass":
        n_outputs = int(max(y_train.max(initial=0), y_val.max(initial=0))) + 1
        n_outputs = max(n_outputs, 2)
    elif the_task == "binary":
        n_outputs = 1
    else:
        if y_val.size and y_val.shape[1] != y_train.shape[1]:
            raise DatasetError(
                "y_val", y_val.shape[1], f"has {y_val.shape[1]} targets, y_train {y_train.shape[1]}"
            )
        n_outputs = int(y_train.shape[1])
    return Dataset(
        name=name,
        task=the_task,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        n_outputs=n_outputs,
    )
