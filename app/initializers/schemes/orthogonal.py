"""Orthogonal schemes — Keras/JAX orthogonal, PyTorch orthogonal_, JAX delta_orthogonal — and
PyTorch's sparse_.

Kernel layout: ``(*spatial, in, out)`` (Keras) for ``orthogonal`` and ``delta_orthogonal``;
``torch_orthogonal`` and ``sparse`` read PyTorch's ``(out, in, *spatial)`` / ``(rows, cols)``.
The QR runs on a bounded number of BLAS threads (``app.initializers.blas``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from app.initializers import keras_rng, sampling
from app.initializers.base import Initializer, Param, Reach
from app.initializers.blas import qr
from app.initializers.errors import InitializerError
from app.initializers.sampling import NORMAL_PEAK
from app.initializers.schemes._common import (
    JAX_REF,
    KERAS_REF,
    TORCH_REF,
    finish,
    frameworks,
    normal_reach,
)

SAXE = (
    "Saxe et al. 2014, Exact solutions to the nonlinear dynamics of learning in deep "
    "linear neural networks (arXiv:1312.6120)"
)
XIAO = "Xiao et al. 2018, Dynamical Isometry and a Mean Field Theory of CNNs (arXiv:1806.05393)"
MARTENS = "Martens 2010, Deep learning via Hessian-free optimization (ICML)"


def orthonormal(rng: np.random.Generator, rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (rows ≥ cols) or rows (rows < cols).

    QR of a Gaussian (max, min) matrix, Q's columns multiplied by sign(diag(R)) so that the
    result is Haar-distributed (Mezzadri 2007), transposed when rows < cols.
    """
    draw = sampling.draw_dtype(dtype)
    a = np.empty((max(rows, cols), min(rows, cols)), dtype=draw)
    sampling.fill_normal(rng, a.reshape(-1), 0.0, 1.0)
    q, r = qr(a)
    q *= np.sign(np.diagonal(r))
    return q.T if rows < cols else q


def column_matrix(shape: Sequence[int], axis: int) -> tuple[int, int]:
    """JAX's orthogonal matrix of ``shape``: cols = shape[axis], rows = the other axes."""
    axis %= len(shape)
    return math.prod(shape[:axis]) * math.prod(shape[axis + 1 :]), shape[axis]


def place_columns(q: np.ndarray, shape: Sequence[int], axis: int) -> np.ndarray:
    """The (rows, cols) matrix laid out with its columns along ``axis`` (JAX: reshape, moveaxis)."""
    axis %= len(shape)
    other = (*shape[:axis], *shape[axis + 1 :])
    return np.moveaxis(q.reshape(*other, shape[axis]), -1, axis)


def _orthogonal_work(rows: int, cols: int) -> int:
    return rows * cols * max(1, min(rows, cols))


class _Orthogonal(Initializer):
    """gain · an orthonormal (rows, cols) matrix (``_matrix``) laid out as ``shape``."""

    family: str = "orthogonal"
    min_rank: int = 2
    gain_key: ClassVar[str] = "gain"

    def _matrix(self, shape: Sequence[int]) -> tuple[int, int]:
        raise NotImplementedError

    def _place(self, q: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return q.reshape(shape)

    def work(self, shape: Sequence[int]) -> int:
        if len(shape) < 2:
            return math.prod(shape)
        return _orthogonal_work(*self._matrix(shape))

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        key = self.gain_key
        gain = abs(self.params[key])
        rows, cols = self._matrix(dims)
        typical = gain / math.sqrt(max(rows, cols, 1))  # the entries' root mean square
        return (
            self._param(key, gain, f"|{key}|"),
            self._param(key, typical, f"|{key}|/sqrt(max(rows, cols))"),
        )

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        rows, cols = self._matrix(shape)
        if rows * cols == 0 or self.params[self.gain_key] == 0:  # +0.0, not 0·Q's -0.0
            return np.zeros(shape, dtype=dtype)
        q = orthonormal(rng, rows, cols, dtype)
        return finish(self.params[self.gain_key] * self._place(q, shape), dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or len(shape) < 2 or math.prod(shape) == 0:
            return None
        rows, cols = self._matrix(shape)
        return abs(self.params[self.gain_key]) / math.sqrt(max(rows, cols))


_COLUMN_AXIS = Param(
    "column_axis",
    "integer",
    None,
    "JAX column_axis: the axis of the orthonormal columns (default -1, the last).",
    nullable=True,
)


def _check_column_axis(init: Initializer, shape: Sequence[int]) -> None:
    axis = init.params["column_axis"]
    if axis is not None and not -len(shape) <= axis < len(shape):
        raise InitializerError(
            f"{init._field}.column_axis",
            axis,
            f"is out of range for rank {len(shape)}",
        )


class Orthogonal(_Orthogonal):
    name: str = "orthogonal"
    PARAMS: tuple[Param, ...] = (
        Param("gain", "number", 1.0, "Multiplies the orthogonal matrix."),
        _COLUMN_AXIS,
    )
    PARAM_ALIASES: ClassVar[dict[str, str]] = {"scale": "gain"}
    FOREIGN_PARAMS: ClassVar[frozenset[str]] = frozenset({"column_axis"})
    aliases: tuple[str, ...] = (
        "orthogonal",
        "Orthogonal",
        "OrthogonalInitializer",
        "jax.nn.initializers.orthogonal",
    )
    formula: str = (
        "rows = prod(shape[:-1]), cols = shape[-1]; Q from QR of N(0,1)^(max, min), "
        "Q·sign(diag(R)), transposed if rows < cols; W = gain · reshape(Q)  (column_axis: "
        "cols = shape[column_axis], Q's columns laid along that axis, as JAX)"
    )
    description: str = (
        "Keras Orthogonal: a (Haar-)random orthogonal matrix; orthonormal columns "
        "when rows ≥ cols, else orthonormal rows. Computed server-side in milliseconds "
        "(TF.js's CPU backend takes seconds to minutes)."
    )
    references: tuple[str, ...] = (KERAS_REF, JAX_REF, SAXE)
    # torch's orthogonal_ flattens the other way: it is torch_orthogonal's.
    frameworks: dict[str, str | None] = frameworks("Orthogonal", "orthogonal", None, "orthogonal")
    keras_class: str | None = "Orthogonal"
    tfjs_class: str | None = "Orthogonal"

    def _axis(self) -> int:
        axis = self.params["column_axis"]
        return -1 if axis is None else axis

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        _check_column_axis(self, shape)

    def _matrix(self, shape: Sequence[int]) -> tuple[int, int]:
        return column_matrix(shape, self._axis())

    def _place(self, q: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return place_columns(q, shape, self._axis())

    def _tfjs_unsupported(self) -> str | None:
        if self.params["column_axis"] is not None:
            return "TF.js 4.22 Orthogonal has no column_axis"
        return None

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        rows, cols = self._matrix(shape)
        a = keras_rng.normal(seed, (max(cols, rows), min(cols, rows)), 0.0, 1.0, dtype)
        # keras.ops.qr → convert_to_tensor, which turns float64 into floatx (float32).
        q, r = qr(a.astype(np.float32) if a.dtype == np.float64 else a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = np.transpose(q)
        return np.asarray(self.params["gain"] * np.reshape(q, shape))

    def _check_compat(self, dtype: str) -> None:
        super()._check_compat(dtype)
        if self.params["column_axis"] is not None:
            raise InitializerError(
                "compat", "keras", "Keras 3 Orthogonal has no column_axis (it is JAX's)"
            )
        if dtype in ("float16", "bfloat16"):
            raise InitializerError(
                "dtype",
                dtype,
                "compat 'keras' orthogonal runs NumPy's QR, "
                "which has no float16/bfloat16; use float32 or float64",
            )


class TorchOrthogonal(_Orthogonal):
    name = "torch_orthogonal"
    PARAMS = (Param("gain", "number", 1.0, "Multiplies the orthogonal matrix."),)
    aliases = ("torch_orthogonal", "orthogonal_", "torch.nn.init.orthogonal_")
    formula = (
        "rows = shape[0], cols = prod(shape[1:]); Q from QR of N(0,1)^(max, min), "
        "Q·sign(diag(R)), transposed if rows < cols; W = gain · reshape(Q)"
    )
    description = (
        "PyTorch orthogonal_: flattens the trailing dimensions (rows = shape[0], "
        "the opposite axis from Keras's orthogonal)."
    )
    references = (TORCH_REF, SAXE)
    frameworks = frameworks(pytorch="orthogonal_")

    def _matrix(self, shape: Sequence[int]) -> tuple[int, int]:
        return shape[0], math.prod(shape[1:])


class DeltaOrthogonal(_Orthogonal):
    name = "delta_orthogonal"
    PARAMS = (Param("scale", "number", 1.0, "Multiplies the orthogonal matrix."), _COLUMN_AXIS)
    PARAM_ALIASES: ClassVar[dict[str, str]] = {"gain": "scale"}
    FOREIGN_PARAMS: ClassVar[frozenset[str]] = frozenset({"column_axis"})
    gain_key = "scale"
    aliases = ("delta_orthogonal", "jax.nn.initializers.delta_orthogonal")
    formula = (
        "kernel (*spatial, in, out), out ≥ in: W[(k1-1)//2, ..., :, :] = scale · M, M an "
        "(in, out) matrix with orthonormal rows (JAX orthogonal(column_axis) of (in, out)); "
        "0 elsewhere"
    )
    description = (
        "JAX delta_orthogonal (Xiao et al. 2018): an orthogonal matrix at the centre "
        "tap of a conv kernel, zeros elsewhere — dynamical isometry for deep CNNs."
    )
    references = (JAX_REF, XIAO)
    frameworks = frameworks(jax="delta_orthogonal")
    min_rank, max_rank = 3, 5

    def _axis(self) -> int:
        axis = self.params["column_axis"]
        return -1 if axis is None else axis

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        if shape[-1] < shape[-2]:
            raise InitializerError(
                "shape",
                list(shape),
                f"delta_orthogonal needs out ≥ in (shape[-1] = {shape[-1]} < shape[-2] = "
                f"{shape[-2]})",
            )
        _check_column_axis(self, shape[-2:])

    def _matrix(self, shape: Sequence[int]) -> tuple[int, int]:
        return column_matrix(shape[-2:], self._axis())

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        out = np.zeros(shape, dtype=sampling.draw_dtype(dtype))
        rows, cols = self._matrix(shape)
        if math.prod(shape) == 0 or self.params["scale"] == 0:  # +0.0, not 0·M's -0.0
            return finish(out, dtype)
        centre = tuple((k - 1) // 2 for k in shape[:-2])
        matrix = place_columns(orthonormal(rng, rows, cols, dtype), shape[-2:], self._axis())
        out[centre] = self.params["scale"] * matrix
        return finish(out, dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or len(shape) < 3 or math.prod(shape) == 0:
            return None
        # M has `in` orthonormal rows: the squares sum to `in` over numel entries, mean ~0.
        return abs(self.params["scale"]) * math.sqrt(shape[-2] / math.prod(shape))

    def work(self, shape: Sequence[int]) -> int:
        if len(shape) < 2:
            return math.prod(shape)
        return max(math.prod(shape), _orthogonal_work(*self._matrix(shape)))


class Sparse(Initializer):
    name = "sparse"
    family = "structured"
    PARAMS = (
        Param(
            "sparsity",
            "number",
            0.1,
            "Fraction of each column set to zero, in [0, 1).",
            minimum=0.0,
            maximum=1.0,
            exclusive_maximum=True,
        ),
        Param("std", "number", 0.01, "Standard deviation of the non-zero values.", minimum=0.0),
    )
    aliases = ("sparse", "sparse_", "torch.nn.init.sparse_")
    formula = (
        "N(0, std²), then ceil(sparsity · rows) entries of every column set to 0 (2-D (rows, cols))"
    )
    description = (
        "PyTorch sparse_ (Martens 2010). Unlike torch, the zero positions come from "
        "the same seeded generator (torch's ignores its generator argument)."
    )
    references = (TORCH_REF, MARTENS)
    frameworks = frameworks(pytorch="sparse_")
    min_rank = max_rank = 2

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        return normal_reach(self, 0.0, self.params["std"], "std", None, NORMAL_PEAK)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        rows, cols = shape
        values = np.empty(shape, dtype=sampling.draw_dtype(dtype))
        sampling.fill_normal(rng, values.reshape(-1), 0.0, self.params["std"])
        zeros = math.ceil(self.params["sparsity"] * rows)
        if zeros and values.size:
            keys = rng.random(shape, dtype=np.float32)
            picked = np.argpartition(keys, zeros - 1, axis=0)[:zeros]  # (zeros, cols)
            values[picked, np.arange(cols)] = 0
        return finish(values, dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or len(shape) != 2 or shape[0] == 0:
            return None
        rows = shape[0]
        kept = rows - math.ceil(self.params["sparsity"] * rows)
        return self.params["std"] * math.sqrt(kept / rows)
