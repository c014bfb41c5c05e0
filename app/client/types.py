"""Typed results of the client: frozen dataclasses read from the server's JSON documents.

Each keeps the document it was read from in ``raw`` (fields this module does not name, and
fields added to the API later, are there). Numbers the server could not represent (NaN, inf)
arrive as ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

JOB_FINISHED = frozenset({"succeeded", "failed", "cancelled"})


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Stats:
    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    @classmethod
    def from_json(cls, doc: Any) -> Stats:
        d = doc if isinstance(doc, dict) else {}
        return cls(*(_float(d.get(k)) for k in ("mean", "std", "min", "max")))


@dataclass(frozen=True)
class Progress:
    runs_total: int
    runs_done: int
    runs_cancelled: int
    fraction: float
    eta_seconds: float | None

    @classmethod
    def from_json(cls, doc: Any) -> Progress:
        d = doc if isinstance(doc, dict) else {}
        return cls(
            int(d.get("runs_total") or 0),
            int(d.get("runs_done") or 0),
            int(d.get("runs_cancelled") or 0),
            float(d.get("fraction") or 0.0),
            _float(d.get("eta_seconds")),
        )


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EpochRecord:
        return cls(
            int(d.get("epoch") or 0),
            *(_float(d.get(k)) for k in ("train_loss", "train_accuracy", "val_loss")),
            *(_float(d.get(k)) for k in ("val_accuracy", "seconds")),
        )


@dataclass(frozen=True)
class Run:
    """One (scheme, repeat) run of a job."""

    index: int
    scheme: int
    label: str
    repeat: int
    seed: int
    status: str
    epoch: int
    batch: int
    total_batches: int
    diverged: bool
    error: str | None
    batch_losses: list[float | None]
    epochs: list[EpochRecord]
    diagnostics: dict[str, Any]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Run:
        return cls(
            index=int(d.get("index") or 0),
            scheme=int(d.get("scheme") or 0),
            label=str(d.get("label") or ""),
            repeat=int(d.get("repeat") or 0),
            seed=int(d.get("seed") or 0),
            status=str(d.get("status") or "queued"),
            epoch=int(d.get("epoch") or 0),
            batch=int(d.get("batch") or 0),
            total_batches=int(d.get("total_batches") or 0),
            diverged=bool(d.get("diverged")),
            error=_str(d.get("error")),
            batch_losses=[_float(x) for x in d.get("batch_losses") or []],
            epochs=[EpochRecord.from_json(e) for e in d.get("epochs") or []],
            diagnostics=dict(d.get("diagnostics") or {}),
        )


@dataclass(frozen=True)
class Summary:
    """One scheme's results over its repeats."""

    scheme: int
    label: str
    final_val_accuracy: Stats
    final_val_loss: Stats
    last_batch_loss: Stats
    diverged: int
    seconds: float | None
    text: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Summary:
        return cls(
            scheme=int(d.get("scheme") or 0),
            label=str(d.get("label") or ""),
            final_val_accuracy=Stats.from_json(d.get("final_val_accuracy")),
            final_val_loss=Stats.from_json(d.get("final_val_loss")),
            last_batch_loss=Stats.from_json(d.get("last_batch_loss")),
            diverged=int(d.get("diverged") or 0),
            seconds=_float(d.get("seconds")),
            text=str(d.get("text") or ""),
        )


@dataclass(frozen=True)
class Job:
    """A training-comparison job (``GET /v1/jobs/{id}``)."""

    id: str
    status: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: Progress
    spec: dict[str, Any]
    runs: list[Run]
    summary: list[Summary]
    error: str | None
    links: dict[str, str]
    raw: dict[str, Any] = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.status in JOB_FINISHED

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Job:
        return cls(
            id=str(d["id"]),
            status=str(d.get("status")),
            created_at=str(d.get("created_at") or ""),
            started_at=_str(d.get("started_at")),
            finished_at=_str(d.get("finished_at")),
            progress=Progress.from_json(d.get("progress")),
            spec=dict(d.get("spec") or {}),
            runs=[Run.from_json(r) for r in d.get("runs") or []],
            summary=[Summary.from_json(s) for s in d.get("summary") or []],
            error=_str(d.get("error")),
            links=dict(d.get("links") or {}),
            raw=d,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /v1/jobs``, newest first; ``next_cursor`` is None on the last."""

    jobs: list[Job]
    next_cursor: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of ``/v1/jobs/{id}/events``: ``progress``, ``points``, ``epoch``,
    ``status`` or ``end``; ``data`` is its parsed JSON."""

    id: str
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Tensor:
    """An initialized tensor and what reproduces it (``initializer`` holds the seed)."""

    array: np.ndarray
    seed: int | None
    initializer: dict[str, Any] | None
    fan_in: float | None
    fan_out: float | None


@dataclass(frozen=True)
class Initializer:
    """A catalog entry of ``/v1/initializers``."""

    name: str
    family: str
    aliases: list[str]
    formula: str
    description: str
    params: dict[str, Any]
    frameworks: dict[str, str | None]
    references: list[Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Initializer:
        return cls(
            name=str(d["name"]),
            family=str(d.get("family") or ""),
            aliases=[str(a) for a in d.get("aliases") or []],
            formula=str(d.get("formula") or ""),
            description=str(d.get("description") or ""),
            params=dict(d.get("params") or {}),
            frameworks=dict(d.get("frameworks") or {}),
            references=list(d.get("references") or []),
            raw=d,
        )


@dataclass(frozen=True)
class Dataset:
    """A built-in dataset (``id`` None) or an upload (``kind == "upload"``)."""

    name: str
    kind: str
    task: str | None
    id: str | None
    available: bool
    n_train: int | None
    n_val: int | None
    input_dim: int | None
    n_outputs: int | None
    ref: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Dataset:
        def count(key: str) -> int | None:
            value = d.get(key)
            return int(value) if isinstance(value, int) else None

        return cls(
            name=str(d.get("name") or ""),
            kind=str(d.get("kind") or ""),
            task=_str(d.get("task")),
            id=_str(d.get("id")),
            available=bool(d.get("available")),
            n_train=count("n_train"),
            n_val=count("n_val"),
            input_dim=count("input_dim"),
            n_outputs=count("n_outputs"),
            ref=dict(d.get("ref") or {"name": d.get("name")}),
            raw=d,
        )


@dataclass(frozen=True)
class Preset:
    """A complete job body reproducing a classic experiment (``body`` is what is posted)."""

    name: str
    description: str
    runs: int
    body: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Preset:
        return cls(
            name=str(d["name"]),
            description=str(d.get("description") or ""),
            runs=int(d.get("runs") or 0),
            body=dict(d.get("body") or {}),
            raw=d,
        )


@dataclass(frozen=True)
class ModelWeight:
    name: str
    shape: list[int]
    dtype: str
    initializer: dict[str, Any] | None


@dataclass(frozen=True)
class Model:
    """A posted model (``/v1/models``): its weights in manifest order and its artifacts."""

    id: str
    weights: list[ModelWeight]
    links: dict[str, str]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Model:
        weights = [
            ModelWeight(
                name=str(w.get("name")),
                shape=[int(n) for n in w.get("shape") or []],
                dtype=str(w.get("dtype") or "float32"),
                initializer=w.get("initializer"),
            )
            for w in d.get("weights") or []
        ]
        return cls(id=str(d["id"]), weights=weights, links=dict(d.get("links") or {}), raw=d)
