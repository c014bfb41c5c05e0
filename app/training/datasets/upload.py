"""Uploaded ``.npz`` datasets: safe parsing and validation (no pickle, zip-bomb guarded).

An upload is a NumPy ``.npz`` (``np.savez`` or ``np.savez_compressed``) with keys
``x_train``, ``y_train`` and optionally ``x_val``, ``y_val``:

- ``x_*``: 2-D ``(n, d)`` of a real numeric dtype (bool, int, uint, float); cast to float32
  and required finite.
- ``y_*``: integer labels ``(n,)`` in ``[0, n_classes)`` → multiclass; or float targets
  ``(n,)`` / ``(n, k)`` → regression; ``task="binary"`` turns 0/1 labels into a sigmoid
  target ``(n, 1)``.

Every limit is checked on the zip directory and on every member's ``.npy`` header (dtype,
declared shape, one inflation budget for the whole upload) before any array data is
decompressed. :func:`describe_npz` (the API) then checks the values a chunk at a time without
holding the arrays; :func:`parse_npz` + :func:`dataset_from_arrays` (the workers) load them.
"""

from __future__ import annotations

import contextlib
import io
import math
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
# Values are checked this many bytes of one array at a time (describe_npz).
CHUNK_BYTES = 4 << 20


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
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(key, None, f"not a valid .npy array: {exc}") from exc
    raise DatasetError(key, None, f".npy format version {version} is not supported")


@dataclass(frozen=True)
class _Member:
    """One array of the archive as its ``.npy`` header declares it."""

    key: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype[Any]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by key, checked against :data:`KEYS` from the zip directory."""
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
    return members


def _read_headers(
    zf: zipfile.ZipFile, infos: Mapping[str, zipfile.ZipInfo], max_elements: int | None
) -> dict[str, _Member]:
    """Every member's ``.npy`` header (a few hundred bytes inflated each), refused by dtype
    and declared shape before any array data is inflated."""
    out: dict[str, _Member] = {}
    for key, info in infos.items():
        try:
            with zf.open(info) as fp:
                shape, fortran, dtype = _npy_header(fp, key)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise DatasetError(key, None, f"cannot read array: {exc}") from exc
        member = _Member(key, info, tuple(shape), fortran, dtype)
        if dtype.hasobject:
            raise DatasetError(key, str(dtype), "object (pickled) arrays are not accepted")
        if max_elements is not None and member.size > max_elements:
            raise DatasetTooLargeError(
                key,
                list(shape),
                f"declares {member.size} elements (shape {list(shape)}); the limit is "
                f"{max_elements} (INITLAB_MAX_DATASET_ELEMENTS): upload fewer rows or features",
            )
        if member.size * dtype.itemsize > info.file_size:
            raise DatasetError(
                key, list(shape), "array header claims more data than the file holds"
            )
        out[key] = member
    return out


def _open(
    data: bytes,
    max_bytes: int,
    max_uncompressed_bytes: int | None,
    max_elements: int | None,
) -> tuple[zipfile.ZipFile, dict[str, _Member]]:
    """The archive and its members' headers, after every check that needs no array data:
    the upload's size, the zip directory, and one inflation budget for the whole upload."""
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
    try:
        infos = _members(zf)
        total = sum(i.file_size for i in infos.values())
        if total > limit:
            raise DatasetTooLargeError(
                "file", total, f"arrays decompress to {total} bytes, over the limit of {limit}"
            )
        members = _read_headers(zf, infos, max_elements)
    except BaseException:
        zf.close()
        raise
    return zf, members


@contextlib.contextmanager
def _read_errors(key: str) -> Iterator[None]:
    """Turn a damaged member's read errors into a :class:`DatasetError` naming ``key``."""
    try:
        yield
    except DatasetError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:
        raise DatasetError(key, None, f"cannot read array: {exc}") from exc


def parse_npz(
    data: bytes,
    *,
    max_bytes: int,
    max_uncompressed_bytes: int | None = None,
    max_elements: int | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Load and check the arrays of an uploaded ``.npz``; raises :class:`DatasetError`.

    ``max_bytes`` bounds the upload; the decompressed total is bounded by
    ``max_uncompressed_bytes`` (default ``min(64 × len(data), 2 GiB)``, at least
    ``max_bytes``), read from the zip directory before decompressing; ``max_elements``
    bounds every array by its ``.npy`` header. Pickled (object) arrays are refused naming
    the key; ``allow_pickle=False`` is also passed to NumPy.
    """
    zf, members = _open(data, max_bytes, max_uncompressed_bytes, max_elements)
    arrays: dict[str, npt.NDArray[Any]] = {}
    with zf:
        for key, member in members.items():
            with _read_errors(key), zf.open(member.info) as fp:
                arr = np.lib.format.read_array(fp, allow_pickle=False)
            arrays[key] = np.ascontiguousarray(arr) if member.fortran else arr
    return arrays


def _chunks(zf: zipfile.ZipFile, member: _Member) -> Iterator[tuple[int, npt.NDArray[Any]]]:
    """(first element index, 1-D values) of ``member`` in storage order, ``CHUNK_BYTES`` at a
    time: only one chunk is inflated into memory at once."""
    per = max(1, CHUNK_BYTES // max(1, member.dtype.itemsize))
    with _read_errors(member.key), zf.open(member.info) as fp:
        _npy_header(fp, member.key)
        done = 0
        while done < member.size:
            n = min(per, member.size - done)
            raw = fp.read(n * member.dtype.itemsize)
            if len(raw) != n * member.dtype.itemsize:
                raise DatasetError(member.key, None, "cannot read array: the data is truncated")
            yield done, np.frombuffer(raw, dtype=member.dtype)
            done += n
        if fp.read(1):  # reaching the end also checks the member's CRC
            raise DatasetError(member.key, None, "has data after the array its header declares")


def describe_npz(
    data: bytes,
    name: str,
    task: str | None = None,
    *,
    max_bytes: int,
    max_elements: int | None = None,
    max_uncompressed_bytes: int | None = None,
) -> dict[str, Any]:
    """The summary ``dataset_from_arrays(name, parse_npz(data), task).summary()`` gives, with
    the same checks and errors, without holding the arrays: shapes and dtypes are checked
    from the headers, values ``CHUNK_BYTES`` at a time. Memory: the upload plus a few chunks,
    whatever its compression ratio."""
    zf, members = _open(data, max_bytes, max_uncompressed_bytes, max_elements)
    with zf:
        if task is not None and task not in TASKS:
            raise DatasetError("task", task, f"must be one of {', '.join(TASKS)}")
        x = members["x_train"]
        _check_x_meta("x_train", x.shape, x.dtype)
        if x.shape[0] < 1:
            raise DatasetError("x_train", 0, "must have at least one row")
        y = members["y_train"]
        the_task = _infer_task(y.dtype) if task is None else task
        splits = [(x, y)]
        _check_y_meta("y_train", y.shape, y.dtype, x.shape[0], the_task)
        if "x_val" in members:
            xv, yv = members["x_val"], members["y_val"]
            _check_x_meta("x_val", xv.shape, xv.dtype)
            _check_val_features(xv.shape[1], x.shape[1])
            _check_y_meta("y_val", yv.shape, yv.dtype, xv.shape[0], the_task)
            if the_task == "regression":
                _check_val_targets(_targets(yv.shape), _targets(y.shape))
            splits.append((xv, yv))
        top = 0
        for xm, ym in splits:
            bad: int | None = None
            for start, values in _chunks(zf, xm):
                row = _first_nonfinite_row(values, start, xm.shape, xm.fortran)
                bad = row if bad is None or (row is not None and row < bad) else bad
            if bad is not None:
                raise _nonfinite(xm.key, bad)
            for _, values in _chunks(zf, ym):
                labels = _check_y_values(ym.key, values, the_task)
                if the_task == "multiclass" and labels.size:
                    top = max(top, int(labels.max()))
    n_val = members["x_val"].shape[0] if "x_val" in members else 0
    return _summary(name, the_task, x.shape[0], n_val, x.shape[1], y.shape, top)


def task_fits(
    data: bytes, name: str, *, max_bytes: int, max_elements: int | None = None
) -> dict[str, dict[str, Any]]:
    """What a job that sets each task on this upload gets: ``{"n_outputs": k}``, or
    ``{"error": {"field", "msg"}}`` where its labels do not fit the task (checked as
    :func:`describe_npz` does, a chunk at a time). Kept with the upload, so a job's task
    override is checked at submission without reading the data again."""
    fits: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        try:
            summary = describe_npz(data, name, task, max_bytes=max_bytes, max_elements=max_elements)
        except DatasetError as exc:
            fits[task] = {"error": {"field": exc.field, "msg": exc.msg}}
        else:
            fits[task] = {"n_outputs": summary["n_outputs"]}
    return fits


def _summary(
    name: str, task: str, n_train: int, n_val: int, d: int, y_shape: tuple[int, ...], top: int
) -> dict[str, Any]:
    """``Dataset.summary()`` of an upload, from its sizes (``top``: the largest label)."""
    n_outputs = _n_outputs(task, top, y_shape)
    return {
        "name": name,
        "task": task,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": 0,
        "input_dim": d,
        "n_outputs": n_outputs,
        "n_classes": {"multiclass": n_outputs, "binary": 2}.get(task),
    }


def _n_outputs(task: str, top: int, y_shape: tuple[int, ...]) -> int:
    """Classes (multiclass: the largest label + 1, at least 2), 1 (binary), or targets."""
    return {"multiclass": max(top + 1, 2), "binary": 1}.get(task, _targets(y_shape))


def _targets(shape: tuple[int, ...]) -> int:
    """Regression targets per row of a ``(n,)`` or ``(n, k)`` array."""
    return 1 if len(shape) == 1 else int(shape[1])


def _check_x_meta(key: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    if len(shape) != 2:
        raise DatasetError(key, list(shape), f"must be 2-D (n, features), got {len(shape)}-D")
    if shape[1] < 1:
        raise DatasetError(key, list(shape), "must have at least one feature")
    if dtype.kind not in "biuf":
        raise DatasetError(key, str(dtype), "must be a real numeric array (float, int or bool)")


def _as_float32(values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    with np.errstate(over="ignore", invalid="ignore"):  # overflow → inf, reported by the caller
        return np.ascontiguousarray(values, dtype=np.float32)


def _first_nonfinite_row(
    values: npt.NDArray[Any], start: int, shape: tuple[int, ...], fortran: bool
) -> int | None:
    """The lowest row holding a NaN/inf (after the float32 cast) among ``values``, elements
    ``start``... of an ``(n, d)`` array stored in C (or Fortran) order; None if all finite."""
    bad = np.flatnonzero(~np.isfinite(_as_float32(values)))
    if not bad.size:
        return None
    n, d = shape
    return int(((bad + start) % n).min()) if fortran else int((bad[0] + start) // d)


def _nonfinite(key: str, row: int) -> DatasetError:
    return DatasetError(key, row, f"contains NaN or inf (first in row {row}) after float32 cast")


def _check_x(key: str, x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    _check_x_meta(key, x.shape, x.dtype)
    out = _as_float32(x)
    row = _first_nonfinite_row(out.reshape(-1), 0, out.shape, False)
    if row is not None:
        raise _nonfinite(key, row)
    return out


def _infer_task(dtype: np.dtype[Any]) -> Task:
    if dtype.kind in "biu":
        return "multiclass"
    if dtype.kind == "f":
        return "regression"
    raise DatasetError("y_train", str(dtype), "must be integer labels or float targets")


def _check_y_meta(
    key: str, shape: tuple[int, ...], dtype: np.dtype[Any], n: int, task: str
) -> None:
    rows = shape[0] if shape else 1
    if rows != n:
        x_key = "x_" + key.split("_", 1)[1]
        raise DatasetError(key, rows, f"has {rows} rows but {x_key} has {n}")
    if dtype.kind not in "biuf":
        raise DatasetError(key, str(dtype), "must be integer labels or float targets")
    if task == "regression":
        if len(shape) not in (1, 2):
            raise DatasetError(key, list(shape), "regression targets must be (n,) or (n, k)")
    elif not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise DatasetError(key, list(shape), "class labels must be 1-D (n,)")


def _check_y_values(key: str, values: npt.NDArray[Any], task: str) -> npt.NDArray[Any]:
    """``values`` (any shape) checked for ``task``: float32 targets (regression) or int64
    labels (classification), same shape."""
    if task == "regression":
        out = np.ascontiguousarray(values, dtype=np.float32)
        if not np.isfinite(out).all():
            raise DatasetError(key, None, "contains NaN or inf")
        return out
    if values.dtype.kind == "f" and (
        not np.isfinite(values).all() or not np.array_equal(values, np.round(values))
    ):
        raise DatasetError(key, None, "class labels must be whole numbers")
    labels = values.astype(np.int64)
    if labels.size and int(labels.min()) < 0:
        raise DatasetError(key, int(labels.min()), "class labels must be >= 0")
    if task == "binary":
        if labels.size and int(labels.max()) > 1:
            raise DatasetError(key, int(labels.max()), "binary labels must be 0 or 1")
    elif labels.size and int(labels.max()) >= MAX_CLASSES:
        raise DatasetError(key, int(labels.max()), f"class labels must be < {MAX_CLASSES}")
    return labels


def _check_y(key: str, y: npt.NDArray[Any], n: int, task: Task) -> npt.NDArray[Any]:
    _check_y_meta(key, y.shape, y.dtype, n, task)
    out = _check_y_values(key, y.reshape(n, -1) if task == "regression" else y.reshape(n), task)
    return out.astype(np.float32).reshape(n, 1) if task == "binary" else out


def _check_val_features(got: int, want: int) -> None:
    if got != want:
        raise DatasetError("x_val", got, f"has {got} features, x_train {want}")


def _check_val_targets(got: int, want: int) -> None:
    if got != want:
        raise DatasetError("y_val", got, f"has {got} targets, y_train {want}")


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
    the_task: Task = _infer_task(arrays["y_train"].dtype) if task is None else task  # type: ignore[assignment]
    y_train = _check_y("y_train", arrays["y_train"], len(x_train), the_task)
    if "x_val" in arrays:
        x_val = _check_x("x_val", arrays["x_val"])
        _check_val_features(x_val.shape[1], x_train.shape[1])
        if "y_val" not in arrays:
            raise DatasetError("y_val", None, "x_val and y_val come together")
        y_val = _check_y("y_val", arrays["y_val"], len(x_val), the_task)
    else:
        x_val = np.zeros((0, x_train.shape[1]), dtype=np.float32)
        y_val = y_train[:0].copy()
    if the_task == "regression" and y_val.size:
        _check_val_targets(y_val.shape[1], y_train.shape[1])
    top = int(max(y_train.max(initial=0), y_val.max(initial=0))) if the_task == "multiclass" else 0
    n_outputs = _n_outputs(the_task, top, y_train.shape)
    return Dataset(
        name=name,
        task=the_task,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        n_outputs=n_outputs,
    )
