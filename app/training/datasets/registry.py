"""Dataset references → datasets: ``load_dataset``, ``check_dataset``, ``list_datasets``.

A reference is the job spec's ``dataset`` object:

- ``{"name": "mnist" | "fashion-mnist", "validation_size": 5000, "train_size": null,
  "validation_from": "start", "test": false}``
- ``{"name": "circles" | "moons" | "spirals" | "xor" | "blobs", "train_size": ..., ...}``
- ``{"name": "upload", "id": "<id from POST /v1/datasets>", ...}`` (``{"id": ...}`` alone
  means the same).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.training.datasets import idx, synthetic
from app.training.datasets.base import TASKS, Dataset, DatasetError, DatasetUnavailableError
from app.training.datasets.params import Param, describe_params, parse_params
from app.training.datasets.upload import dataset_from_arrays, describe_npz, parse_npz

UPLOAD = "upload"
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MAX_ROWS = 100_000_000

UploadedBytes = Callable[[str], bytes | None]
# Returns False/None for an unknown id, True, or the summary stored with the upload
# (``Dataset.summary()``) so that sizes are known at submission.
UploadedExists = Callable[[str], bool | Mapping[str, Any] | None]

_SPLIT_PARAMS = (
    Param(
        "validation_from",
        "string",
        "start",
        "which end of the training file the validation rows come from (TF tutorial: start)",
        choices=("start", "end"),
    ),
)

IDX_PARAMS: tuple[Param, ...] = (
    Param("validation_size", "integer", 5000, "rows of the training file held out", 0, 60_000),
    Param(
        "train_size",
        "integer",
        None,
        "training rows used (default: all rows not held out)",
        1,
        60_000,
        nullable=True,
    ),
    *_SPLIT_PARAMS,
    Param("test", "boolean", False, "also load the t10k test split"),
)

UPLOAD_PARAMS: tuple[Param, ...] = (
    Param(
        "validation_size",
        "integer",
        None,
        "rows of x_train held out for validation (only if the upload has no x_val)",
        0,
        _MAX_ROWS,
        nullable=True,
    ),
    Param(
        "train_size",
        "integer",
        None,
        "training rows used (default: all)",
        1,
        _MAX_ROWS,
        nullable=True,
    ),
    *_SPLIT_PARAMS,
    Param(
        "task",
        "string",
        None,
        "multiclass | binary | regression (default: from y_train's dtype)",
        choices=TASKS,
        nullable=True,
    ),
)


def _name(ref: Any) -> str:
    if not isinstance(ref, Mapping):
        raise DatasetError("dataset", ref, "must be an object with a 'name'")
    name = ref.get("name", UPLOAD if "id" in ref else None)
    if not isinstance(name, str) or not name:
        raise DatasetError("dataset.name", name, "must be a dataset name")
    key = name.lower()
    if key not in idx.IDX_SPECS and key not in synthetic.SYNTHETIC and key != UPLOAD:
        known = ", ".join([*idx.IDX_SPECS, *synthetic.SYNTHETIC, UPLOAD])
        raise DatasetError("dataset.name", name, f"unknown dataset (known: {known})")
    return key


def _upload_id(ref: Mapping[str, Any]) -> str:
    uid = ref.get("id")
    if not isinstance(uid, str) or not _ID_RE.match(uid):
        raise DatasetError("dataset.id", uid, "must be the id returned by POST /v1/datasets")
    return uid


def _split_sizes(
    n: int, validation_size: int | None, train_size: int | None, *, field: str = "dataset"
) -> tuple[int, int]:
    vs = validation_size or 0
    if vs >= n:
        raise DatasetError(
            f"{field}.validation_size", vs, f"must be below the {n} rows available for training"
        )
    rest = n - vs
    if train_size is not None and train_size > rest:
        raise DatasetError(
            f"{field}.train_size",
            train_size,
            f"only {rest} rows remain after holding out {vs} for validation",
        )
    return (train_size if train_size is not None else rest), vs


def _split(
    x: npt.NDArray[Any], y: npt.NDArray[Any], p: Mapping[str, Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    """Hold out ``validation_size`` rows from the start (TF tutorial) or the end."""
    n_train, vs = _split_sizes(len(x), p["validation_size"], p["train_size"])
    if p["validation_from"] == "start":
        val, rest = slice(0, vs), slice(vs, vs + n_train)
    else:
        val, rest = slice(len(x) - vs, len(x)), slice(0, n_train)
    return x[rest], y[rest], x[val], y[val]


# ---------------------------------------------------------------------------------------
# IDX


def _idx_dataset(spec: idx.IdxSpec, arrs: Mapping[str, Any], p: Mapping[str, Any]) -> Dataset:
    x_tr, y_tr, x_va, y_va = _split(arrs["x_train"], arrs["y_train"], p)
    test = p["test"]
    return Dataset(
        name=spec.name,
        task="multiclass",
        x_train=idx.scale_pixels(x_tr),
        y_train=y_tr.astype(np.int64),
        x_val=idx.scale_pixels(x_va),
        y_val=y_va.astype(np.int64),
        n_outputs=spec.n_classes,
        x_test=idx.scale_pixels(arrs["x_test"]) if test else None,
        y_test=arrs["y_test"].astype(np.int64) if test else None,
    )


def _idx_unavailable(spec: idx.IdxSpec, data_dir: Path, test: bool) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        "dataset.name", spec.name, idx.unavailable_message(spec, data_dir, test=test)
    )


def _load_idx(
    spec: idx.IdxSpec,
    ref: Mapping[str, Any],
    data_dir: Path,
    allow_downloads: bool,
    mirrors: Sequence[str] | None,
) -> Dataset:
    p = parse_params(ref, IDX_PARAMS, dataset=spec.name, reserved=("name",))
    paths = idx.locate(spec, data_dir, test=p["test"])
    if paths is None:
        if not allow_downloads:
            raise _idx_unavailable(spec, data_dir, p["test"])
        paths = idx.download(spec, data_dir, test=p["test"], mirrors=mirrors)
    return _idx_dataset(spec, idx.load_arrays(spec, paths, test=p["test"]), p)


def _check_idx(
    spec: idx.IdxSpec, ref: Mapping[str, Any], data_dir: Path, allow_downloads: bool
) -> dict[str, Any]:
    p = parse_params(ref, IDX_PARAMS, dataset=spec.name, reserved=("name",))
    paths = idx.locate(spec, data_dir, test=p["test"])
    if paths is not None:
        n = idx.read_header(paths[spec.train_images.stem], spec.train_images)[0]
        n_labels = idx.read_header(paths[spec.train_labels.stem], spec.train_labels)[0]
        if n != n_labels:
            raise DatasetError(
                "dataset.name",
                spec.name,
                f"{paths[spec.train_labels.stem]} has {n_labels} labels for {n} images",
            )
        n_test = (
            idx.read_header(paths[spec.test_images.stem], spec.test_images)[0] if p["test"] else 0
        )
        where = str(paths[spec.train_images.stem].parent)
    elif allow_downloads:
        n, n_test = spec.train_images.count, spec.test_images.count if p["test"] else 0
        where = "download"
    else:
        raise _idx_unavailable(spec, data_dir, p["test"])
    n_train, n_val = _split_sizes(n, p["validation_size"], p["train_size"])
    summary = _summary(
        spec.name,
        "idx",
        "multiclass",
        n_train,
        n_val,
        n_test,
        spec.rows * spec.cols,
        spec.n_classes,
        where,
        p,
    )
    if paths is None:  # accepted: the worker downloads the files before the first run
        summary.update(
            available=False,
            downloadable=True,
            hint=idx.download_hint(spec, data_dir, test=p["test"]),
        )
    return summary


# ---------------------------------------------------------------------------------------
# Synthetic


def _synthetic_params(spec: synthetic.SyntheticSpec, ref: Mapping[str, Any]) -> dict[str, Any]:
    p = parse_params(ref, spec.params, dataset=spec.name, reserved=("name",))
    rows = p["train_size"] + p["validation_size"]
    elements = rows * spec.input_dim(p)
    if elements > synthetic.MAX_SYNTHETIC_ELEMENTS:
        raise DatasetError(
            "dataset.train_size",
            p["train_size"],
            f"(train_size + validation_size) × features = {elements} is over the limit of "
            f"{synthetic.MAX_SYNTHETIC_ELEMENTS}",
        )
    return p


def _check_synthetic(spec: synthetic.SyntheticSpec, ref: Mapping[str, Any]) -> dict[str, Any]:
    p = _synthetic_params(spec, ref)
    return _summary(
        spec.name,
        "synthetic",
        spec.task,
        p["train_size"],
        p["validation_size"],
        0,
        spec.input_dim(p),
        spec.n_outputs(p),
        "generated",
        p,
    )


# ---------------------------------------------------------------------------------------
# Uploads


def _load_upload(ref: Mapping[str, Any], uploaded: UploadedBytes | None) -> Dataset:
    uid = _upload_id(ref)
    p = parse_params(ref, UPLOAD_PARAMS, dataset=UPLOAD, reserved=("name", "id"))
    data = uploaded(uid) if uploaded is not None else None
    if data is None:
        raise DatasetError(
            "dataset.id", uid, "no uploaded dataset with this id (unknown or expired)"
        )
    arrays = parse_npz(data, max_bytes=len(data))
    ds = dataset_from_arrays(f"{UPLOAD}:{uid}", arrays, p["task"])
    if ds.n_val and p["validation_size"] is not None:
        raise DatasetError(
            "dataset.validation_size", p["validation_size"], "the upload has its own x_val/y_val"
        )
    if p["validation_size"] is None and p["train_size"] is None:
        return ds
    x_tr, y_tr, x_va, y_va = _split(ds.x_train, ds.y_train, p)
    if ds.n_val:
        x_va, y_va = ds.x_val, ds.y_val
    return Dataset(
        name=ds.name,
        task=ds.task,
        x_train=x_tr,
        y_train=y_tr,
        x_val=x_va,
        y_val=y_va,
        n_outputs=ds.n_outputs,
    )


def _check_upload(
    ref: Mapping[str, Any],
    uploaded_exists: UploadedExists | None,
    uploaded: UploadedBytes | None = None,
) -> dict[str, Any]:
    uid = _upload_id(ref)
    p = parse_params(ref, UPLOAD_PARAMS, dataset=UPLOAD, reserved=("name", "id"))
    meta = uploaded_exists(uid) if uploaded_exists is not None else None
    if not meta:
        raise DatasetError(
            "dataset.id", uid, "no uploaded dataset with this id (unknown or expired)"
        )
    p["id"] = uid
    overridden = p["task"] is not None and (
        not isinstance(meta, Mapping) or p["task"] != meta.get("task")
    )
    fits = meta.get("tasks") if isinstance(meta, Mapping) else None
    if (
        overridden
        and isinstance(meta, Mapping)
        and isinstance(fits, Mapping)
        and isinstance(fits.get(p["task"]), Mapping)
    ):
        # Whether the labels fit another task, and the output width it gives, was found when
        # the upload was checked (app.training.datasets.upload.task_fits).
        fit = fits[p["task"]]
        if "error" in fit:
            raise DatasetError(
                "dataset.task",
                p["task"],
                f"does not fit this upload: {fit['error']['field']} {fit['error']['msg']}",
            )
        meta = {**meta, "task": p["task"], "n_outputs": fit["n_outputs"]}
    elif overridden and uploaded is not None:
        # An upload kept before its task fits were recorded: whether the labels fit another
        # task (0/1 for binary, whole numbers for classes), and the output width it gives, only
        # the data says. Checked now, not in every worker (describe_npz: a chunk at a time).
        data = uploaded(uid)
        if data is None:
            raise DatasetError(
                "dataset.id", uid, "no uploaded dataset with this id (unknown or expired)"
            )
        try:
            meta = describe_npz(data, f"{UPLOAD}:{uid}", p["task"], max_bytes=len(data))
        except DatasetError as exc:
            if exc.field.startswith("dataset."):
                raise
            raise DatasetError(
                "dataset.task", p["task"], f"does not fit this upload: {exc.field} {exc.msg}"
            ) from None
    if not isinstance(meta, Mapping):
        return _summary(UPLOAD, UPLOAD, p["task"], None, None, 0, None, None, "upload", p)
    n_train, n_val = int(meta["n_train"]), int(meta["n_val"])
    if n_val and p["validation_size"] is not None:
        raise DatasetError(
            "dataset.validation_size", p["validation_size"], "the upload has its own x_val/y_val"
        )
    if p["validation_size"] is not None or p["train_size"] is not None:
        split_train, split_val = _split_sizes(n_train, p["validation_size"], p["train_size"])
        n_train, n_val = split_train, (n_val or split_val)
    task = p["task"] or meta.get("task")
    n_outputs = 1 if task == "binary" and meta.get("task") != "binary" else meta.get("n_outputs")
    return _summary(
        UPLOAD, UPLOAD, task, n_train, n_val, 0, meta.get("input_dim"), n_outputs, "upload", p
    )


# ---------------------------------------------------------------------------------------
# Public surface


def _summary(
    name: str,
    kind: str,
    task: str | None,
    n_train: int | None,
    n_val: int | None,
    n_test: int,
    input_dim: int | None,
    n_outputs: int | None,
    where: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    n_classes = n_outputs if task == "multiclass" else (2 if task == "binary" else None)
    return {
        "name": name,
        "kind": kind,
        "task": task,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "input_dim": input_dim,
        "n_outputs": n_outputs,
        "n_classes": n_classes,
        "available": True,
        "downloadable": False,
        "where": where,
        "params": dict(params),
    }


def load_dataset(
    ref: Mapping[str, Any],
    *,
    data_dir: Path | str,
    allow_downloads: bool,
    uploaded: UploadedBytes | None = None,
    mirrors: Mapping[str, Sequence[str]] | None = None,
) -> Dataset:
    """Load (or generate, or download, or decode) the dataset ``ref`` names.

    ``uploaded(id)`` returns an upload's ``.npz`` bytes or None; ``mirrors`` overrides the
    download base URLs per dataset name. Raises :class:`DatasetError` for bad parameters or
    data and :class:`DatasetUnavailableError` when files are missing and cannot be fetched.
    """
    name = _name(ref)
    if name in idx.IDX_SPECS:
        return _load_idx(
            idx.IDX_SPECS[name], ref, Path(data_dir), allow_downloads, (mirrors or {}).get(name)
        )
    if name in synthetic.SYNTHETIC:
        spec = synthetic.SYNTHETIC[name]
        return synthetic.generate(spec, _synthetic_params(spec, ref))
    return _load_upload(ref, uploaded)


def check_dataset(
    ref: Mapping[str, Any],
    *,
    data_dir: Path | str,
    allow_downloads: bool,
    uploaded_exists: UploadedExists | None = None,
    uploaded: UploadedBytes | None = None,
) -> dict[str, Any]:
    """Validate ``ref`` cheaply (no data loaded; IDX headers only) for job submission.

    Returns ``{"name", "kind", "task", "n_train", "n_val", "n_test", "input_dim",
    "n_outputs", "n_classes", "available", "downloadable", "where", "params"}`` where
    ``where`` is the directory holding the files, ``"download"``, ``"generated"`` or
    ``"upload"`` and ``params`` the normalized parameters (defaults filled). ``available``
    means loadable now; IDX files that are absent while downloads are enabled give
    ``available: False, downloadable: True, where: "download"`` (and a ``hint``): the job is
    still accepted, and its worker downloads the files first. Sizes of an upload are None
    unless ``uploaded_exists`` returns its stored summary. An upload whose ``task`` is
    overridden is loaded through ``uploaded(id)`` (when given), since only its labels say
    whether they fit the task and how many outputs it has. Raises :class:`DatasetError` /
    :class:`DatasetUnavailableError` (absent files with downloads disabled; the message says
    which files to put where).
    """
    name = _name(ref)
    if name in idx.IDX_SPECS:
        return _check_idx(idx.IDX_SPECS[name], ref, Path(data_dir), allow_downloads)
    if name in synthetic.SYNTHETIC:
        return _check_synthetic(synthetic.SYNTHETIC[name], ref)
    return _check_upload(ref, uploaded_exists, uploaded)


def list_datasets(data_dir: Path | str, allow_downloads: bool) -> list[dict[str, Any]]:
    """Every built-in dataset with default sizes, availability and parameters (cheap).

    ``available`` is whether it can be loaded now, without network: its files are on this
    machine (``where`` = their directory) or it is generated (``where`` = ``"generated"``).
    Absent files give ``available: False`` and a ``hint``; with downloads enabled also
    ``downloadable: True`` and ``where: "download"`` (a job is accepted and its worker tries
    the download when it runs), else ``downloadable: False`` and ``where: None``.
    """
    out: list[dict[str, Any]] = []
    for spec in idx.IDX_SPECS.values():
        defaults = {p.name: p.default for p in IDX_PARAMS}
        n_train, n_val = _split_sizes(spec.train_images.count, defaults["validation_size"], None)
        paths = idx.locate(spec, Path(data_dir), test=False)
        entry = {
            "name": spec.name,
            "kind": "idx",
            "task": "multiclass",
            "description": f"{spec.rows}x{spec.cols} grey images, {spec.n_classes} classes",
            "source": spec.source,
            "n_train": n_train,
            "n_val": n_val,
            "n_test": spec.test_images.count,
            "input_dim": spec.rows * spec.cols,
            "n_outputs": spec.n_classes,
            "n_classes": spec.n_classes,
            "available": paths is not None,
            "downloadable": paths is None and allow_downloads,
            "where": (
                str(paths[spec.train_images.stem].parent)
                if paths is not None
                else ("download" if allow_downloads else None)
            ),
            "parameters": describe_params(IDX_PARAMS),
        }
        if paths is None:
            entry["hint"] = (
                idx.download_hint(spec, Path(data_dir), test=False)
                if allow_downloads
                else idx.unavailable_message(spec, Path(data_dir), test=False)
            )
        out.append(entry)
    for sspec in synthetic.SYNTHETIC.values():
        p = {q.name: q.default for q in sspec.params}
        n_outputs = sspec.n_outputs(p)
        out.append(
            {
                "name": sspec.name,
                "kind": "synthetic",
                "task": sspec.task,
                "description": sspec.description,
                "source": "generated in-process from a seed",
                "n_train": p["train_size"],
                "n_val": p["validation_size"],
                "n_test": 0,
                "input_dim": sspec.input_dim(p),
                "n_outputs": n_outputs,
                "n_classes": n_outputs if sspec.task == "multiclass" else 2,
                "available": True,
                "downloadable": False,
                "where": "generated",
                "parameters": describe_params(sspec.params),
            }
        )
    return out
