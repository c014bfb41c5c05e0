"""Synthetic 2-D (and n-D blobs) datasets, generated in-process from a seed.

Randomness: each split draws from its own ``np.random.RandomState(seed)`` (MT19937, NumPy's
frozen legacy stream), so ``circles``, ``moons`` and ``blobs`` equal scikit-learn's
``make_circles`` / ``make_moons`` / ``make_blobs`` with ``random_state=seed`` exactly
(sklearn draws from ``RandomState`` too; a test checks it), and the deeplearning.ai
"Initialization" data (``np.random.seed(1); make_circles(300, noise=.05)`` for train,
``np.random.seed(2); make_circles(100, noise=.05)`` for test) is
``{"name": "circles", "train_size": 300, "validation_size": 100, "noise": 0.05, "seed": 1,
"validation_seed": 2}``. Generation is in float64 (as sklearn), stored as float32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.training.datasets.base import Dataset, Task
from app.training.datasets.params import Param

Generator = Callable[[np.random.RandomState, int, dict[str, Any]], tuple[Any, Any]]

MAX_SYNTHETIC_SAMPLES = 1_000_000
MAX_SYNTHETIC_ELEMENTS = 16_000_000  # rows × features over both splits


def _sizes(n: int, parts: int) -> list[int]:
    """Split ``n`` into ``parts`` as evenly as possible, the first ones one larger."""
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _shuffle(
    rng: np.random.RandomState, x: npt.NDArray[Any], y: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    # sklearn.utils.shuffle: indices = arange(n); rng.shuffle(indices)
    idx = np.arange(len(x))
    rng.shuffle(idx)
    return x[idx], y[idx]


def make_circles(
    rng: np.random.RandomState, n: int, p: dict[str, Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Two concentric circles (radius 1 and ``factor``), as ``sklearn.datasets.make_circles``.

    The outer circle gets ``n // 2`` points, label 0; points are evenly spaced in angle
    (``endpoint=False``), shuffled, then ``N(0, noise²)`` is added to both coordinates.
    """
    n_out = n // 2
    n_in = n - n_out
    a_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    a_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x = np.vstack(
        [
            np.append(np.cos(a_out), np.cos(a_in) * p["factor"]),
            np.append(np.sin(a_out), np.sin(a_in) * p["factor"]),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    x, y = _shuffle(rng, x, y)
    x += rng.normal(scale=p["noise"], size=x.shape)
    return x, y


def make_moons(
    rng: np.random.RandomState, n: int, p: dict[str, Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Two interleaving half circles, as ``sklearn.datasets.make_moons``."""
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    x = np.vstack(
        [
            np.append(np.cos(t_out), 1 - np.cos(t_in)),
            np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    x, y = _shuffle(rng, x, y)
    x += rng.normal(scale=p["noise"], size=x.shape)
    return x, y


def make_blobs(
    rng: np.random.RandomState, n: int, p: dict[str, Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Isotropic Gaussian clusters, as ``sklearn.datasets.make_blobs(centers=k)``.

    Centres ~ U(-10, 10)^d drawn first, then ``n // k`` points per centre (the first
    ``n % k`` centres one more) ~ N(centre, cluster_std²), then shuffled.
    """
    k, d = p["centers"], p["n_features"]
    centers = rng.uniform(-10.0, 10.0, size=(k, d))
    x = np.empty((n, d), dtype=np.float64)
    y = np.empty(n, dtype=np.int64)
    start = 0
    for i, m in enumerate(_sizes(n, k)):
        x[start : start + m] = rng.normal(loc=centers[i], scale=p["cluster_std"], size=(m, d))
        y[start : start + m] = i
        start += m
    return _shuffle(rng, x, y)


def make_spirals(
    rng: np.random.RandomState, n: int, p: dict[str, Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """``arms`` interleaved spirals (CS231n's spiral data), one class per arm.

    Arm ``k`` has radius ``r = t`` and angle ``2π (turns·t + k/arms)`` for ``t`` evenly in
    [0, 1]; then shuffled and ``N(0, noise²)`` added to both coordinates.
    """
    arms = p["arms"]
    xs, ys = [], []
    for k, m in enumerate(_sizes(n, arms)):
        t = np.linspace(0.0, 1.0, m)
        angle = 2 * np.pi * (p["turns"] * t + k / arms)
        xs.append(np.column_stack([t * np.cos(angle), t * np.sin(angle)]))
        ys.append(np.full(m, k, dtype=np.int64))
    x, y = _shuffle(rng, np.concatenate(xs), np.concatenate(ys))
    x += rng.normal(scale=p["noise"], size=x.shape)
    return x, y


def make_xor(
    rng: np.random.RandomState, n: int, p: dict[str, Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Points ~ U[-1, 1)², label 1 where the coordinates' signs differ; then N(0, noise²)."""
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int64)
    x += rng.normal(scale=p["noise"], size=x.shape)
    return x, y


@dataclass(frozen=True)
class SyntheticSpec:
    name: str
    task: Task
    generate: Generator
    params: tuple[Param, ...]
    description: str

    def n_outputs(self, p: dict[str, Any]) -> int:
        if self.task == "binary":
            return 1
        return int(p.get("centers") or p.get("arms") or 2)

    def input_dim(self, p: dict[str, Any]) -> int:
        return int(p.get("n_features", 2))


def _common(train: int, val: int, noise: float | None) -> tuple[Param, ...]:
    out: tuple[Param, ...] = (
        Param("train_size", "integer", train, "training samples", 1, MAX_SYNTHETIC_SAMPLES),
        Param("validation_size", "integer", val, "validation samples", 0, MAX_SYNTHETIC_SAMPLES),
        Param("seed", "integer", 0, "RandomState seed of the training split", 0, 2**32 - 1),
        Param(
            "validation_seed",
            "integer",
            None,
            "RandomState seed of the validation split (default: seed + 1)",
            0,
            2**32 - 1,
            nullable=True,
        ),
    )
    if noise is not None:
        out += (Param("noise", "number", noise, "std of Gaussian noise added to x", 0.0, 10.0),)
    return out


SYNTHETIC: dict[str, SyntheticSpec] = {
    s.name: s
    for s in (
        SyntheticSpec(
            "circles",
            "binary",
            make_circles,
            (
                *_common(300, 100, 0.05),
                Param("factor", "number", 0.8, "inner radius / outer radius", 0.0, 0.999),
            ),
            "two concentric circles (sklearn make_circles)",
        ),
        SyntheticSpec(
            "moons",
            "binary",
            make_moons,
            _common(1000, 500, 0.1),
            "two interleaving half circles (sklearn make_moons)",
        ),
        SyntheticSpec(
            "spirals",
            "multiclass",
            make_spirals,
            (
                *_common(1000, 500, 0.05),
                Param("arms", "integer", 2, "number of spiral arms (= classes)", 2, 10),
                Param("turns", "number", 1.0, "turns of each arm", 0.1, 5.0),
            ),
            "interleaved spirals, one class per arm",
        ),
        SyntheticSpec(
            "xor",
            "binary",
            make_xor,
            _common(1000, 500, 0.05),
            "uniform square, label = sign(x0) xor sign(x1)",
        ),
        SyntheticSpec(
            "blobs",
            "multiclass",
            make_blobs,
            (
                *_common(1000, 500, None),
                Param("centers", "integer", 3, "number of clusters (= classes)", 2, 100),
                Param("n_features", "integer", 2, "input dimension", 1, 1000),
                Param("cluster_std", "number", 1.0, "std of each cluster", 0.0, 100.0),
            ),
            "isotropic Gaussian clusters (sklearn make_blobs)",
        ),
    )
}


def _finish(
    spec: SyntheticSpec, x: npt.NDArray[Any], y: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any]]:
    xf = np.ascontiguousarray(x, dtype=np.float32)
    if spec.task == "binary":
        return xf, y.astype(np.float32).reshape(-1, 1)
    return xf, y.astype(np.int64)


def generate(spec: SyntheticSpec, p: dict[str, Any]) -> Dataset:
    """Both splits of ``spec`` with validated parameters ``p`` (see :data:`SYNTHETIC`)."""
    train_seed = p["seed"]
    val_seed = (
        p["validation_seed"] if p["validation_seed"] is not None else (train_seed + 1) % 2**32
    )
    x_tr, y_tr = _finish(
        spec, *spec.generate(np.random.RandomState(train_seed), p["train_size"], p)
    )
    if p["validation_size"]:
        x_va, y_va = _finish(
            spec, *spec.generate(np.random.RandomState(val_seed), p["validation_size"], p)
        )
    else:
        x_va = np.zeros((0, x_tr.shape[1]), dtype=np.float32)
        y_va = y_tr[:0].copy()
    return Dataset(
        name=spec.name,
        task=spec.task,
        x_train=x_tr,
        y_train=y_tr,
        x_val=x_va,
        y_val=y_va,
        n_outputs=spec.n_outputs(p),
    )
