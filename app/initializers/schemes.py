"""Every initialization scheme.

Kernel layout (Keras, the default): ``(*spatial, in, out)``. Schemes named after PyTorch
functions that act on the tensor's structure (``dirac``, ``torch_orthogonal``, ``sparse``)
read the shape as PyTorch does, ``(out, in, *spatial)``; the ``layout`` argument only decides
how fans are counted.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import ThreadpoolController

from app.initializers import sampling
from app.initializers.base import FLOAT_DTYPES, Initializer, Param, Reach
from app.initializers.errors import InitializerError
from app.initializers.fans import compute_fans
from app.initializers.gains import NONLINEARITIES, calculate_gain
from app.initializers.sampling import NORMAL_PEAK

# Standard deviation of a standard normal truncated to (-2, 2) (Keras's constant).
TRUNCATED_STD = 0.87962566103423978
INT_DTYPES: tuple[str, ...] = (*FLOAT_DTYPES, "int32")
KERAS_REF = "Keras 3 keras/src/initializers/"
TORCH_REF = "PyTorch torch/nn/init.py"
JAX_REF = "JAX jax/_src/nn/initializers.py"
TFJS_REF = "TF.js tfjs-layers/src/initializers.ts"
GLOROT = (
    "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward "
    "neural networks (AISTATS)"
)
HE = "He et al. 2015, Delving Deep into Rectifiers (arXiv:1502.01852)"
LECUN = "LeCun et al. 1998, Efficient BackProp; Klambauer et al. 2017 (arXiv:1706.02515)"
SAXE = (
    "Saxe et al. 2014, Exact solutions to the nonlinear dynamics of learning in deep "
    "linear neural networks (arXiv:1312.6120)"
)
XIAO = "Xiao et al. 2018, Dynamical Isometry and a Mean Field Theory of CNNs (arXiv:1806.05393)"
MARTENS = "Martens 2010, Deep learning via Hessian-free optimization (ICML)"


def _frameworks(
    keras: str | None = None,
    tfjs: str | None = None,
    pytorch: str | None = None,
    jax: str | None = None,
) -> dict[str, str | None]:
    return {
        "keras": f"keras.initializers.{keras}" if keras else None,
        "tfjs": f"tf.initializers.{tfjs}" if tfjs else None,
        "pytorch": f"torch.nn.init.{pytorch}" if pytorch else None,
        "jax": f"jax.nn.initializers.{jax}" if jax else None,
    }


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.empty(shape, dtype=sampling.draw_dtype(dtype))


def _finish(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast to the target dtype; the result is C-contiguous."""
    if values.dtype != dtype:
        values = values.astype(dtype)
    return values if values.flags.c_contiguous else np.ascontiguousarray(values)


def _normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, mean: float, std: float
) -> np.ndarray:
    if dtype is _FLOAT32:  # drawn in its own dtype, C-contiguous: nothing to finish
        return sampling.normal(rng, shape, dtype, mean, std)
    return _finish(sampling.normal(rng, shape, sampling.draw_dtype(dtype), mean, std), dtype)


_FLOAT32 = np.dtype(np.float32)


def _uniform(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, low: float, high: float
) -> np.ndarray:
    out = _empty(shape, dtype)
    sampling.fill_uniform(rng, out.reshape(-1), low, high)
    return _finish(out, dtype)


def _truncated(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    dtype: np.dtype,
    mean: float,
    std: float,
    lo: float,
    hi: float,
) -> np.ndarray:
    draw = sampling.draw_dtype(dtype)
    return _finish(sampling.truncated_normal(rng, shape, draw, mean, std, lo, hi), dtype)


def _truncated_std(lo: float, hi: float) -> float:
    """Standard deviation of a standard normal truncated to [lo, hi]."""

    def pdf(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0

    z = sampling.normal_acceptance(lo, hi)
    a_term = lo * pdf(lo) if math.isfinite(lo) else 0.0
    b_term = hi * pdf(hi) if math.isfinite(hi) else 0.0
    mean_shift = (pdf(lo) - pdf(hi)) / z
    return math.sqrt(max(1 + (a_term - b_term) / z - mean_shift**2, 0.0))


def _normal_reach(
    init: Initializer, mean: float, std: float, std_key: str, mean_key: str | None, peak_z: float
) -> tuple[Reach, Reach]:
    """Reach of mean + std·z with |z| ≤ ``peak_z``: the term that dominates names the field."""
    size = abs(mean) + peak_z * std
    how = f"|{mean_key}| + {peak_z:g}·{std_key}" if mean_key else f"{peak_z:g}·{std_key}"
    key = mean_key if mean_key and abs(mean) >= peak_z * std else std_key
    typical_key = mean_key if mean_key and abs(mean) > std else std_key
    typical = max(abs(mean), std)
    return (
        init._param(key, size, how),
        init._param(typical_key, typical, f"max(|{mean_key}|, {std_key})" if mean_key else std_key),
    )


def _uniform_limit(var: float) -> float:
    """sqrt(3·var) as Keras computes it, or sqrt(3)·sqrt(var) where 3·var overflows."""
    limit = math.sqrt(3.0 * var)
    return limit if math.isfinite(limit) else math.sqrt(3.0) * math.sqrt(var)


# BLAS threads of one QR. OpenBLAS's thread count is process-wide: while any QR runs it is
# held at QR_THREADS (taken by the first QR, released by the last), so a QR never spreads over
# the cores the API's other threads (event loop, chunk fills, other requests) are using.
# Measured on the 2-core VM: 2 threads make a 2048² QR only 1.5× faster (docs/schemes.md).
QR_THREADS = 1
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None
_blas_controller: ThreadpoolController | None = None


def _forget_blas_users() -> None:
    global _blas_lock, _blas_users, _blas_limit
    _blas_lock, _blas_users, _blas_limit = threading.Lock(), 0, None


os.register_at_fork(after_in_child=_forget_blas_users)


@contextmanager
def _bounded_blas() -> Iterator[None]:
    """BLAS limited to QR_THREADS threads for the duration (overlapping uses share it)."""
    global _blas_users, _blas_limit, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controller is None:
                _blas_controller = ThreadpoolController()
            _blas_limit = _blas_controller.limit(limits=QR_THREADS, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def _qr(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.qr(a)`` on QR_THREADS BLAS threads."""
    with _bounded_blas():
        q, r = np.linalg.qr(a)
    return q, r


def _orthonormal(rng: np.random.Generator, rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (rows ≥ cols) or rows (rows < cols).

    QR of a Gaussian (max, min) matrix, Q's columns multiplied by sign(diag(R)) so that the
    result is Haar-distributed (Mezzadri 2007), transposed when rows < cols.
    """
    draw = sampling.draw_dtype(dtype)
    a = np.empty((max(rows, cols), min(rows, cols)), dtype=draw)
    sampling.fill_normal(rng, a.reshape(-1), 0.0, 1.0)
    q, r = _qr(a)
    q *= np.sign(np.diagonal(r))
    return q.T if rows < cols else q


def _orthogonal_work(rows: int, cols: int) -> int:
    return rows * cols * max(1, min(rows, cols))


# --- constants ---------------------------------------------------------------------------------


class Zeros(Initializer):
    name: str = "zeros"
    family: str = "constant"
    aliases: tuple[str, ...] = (
        "zeros",
        "Zeros",
        "zero",
        "zeros_",
        "torch.nn.init.zeros_",
        "jax.nn.initializers.zeros",
    )
    formula: str = "W = 0"
    description: str = (
        "All zeros. Every unit computes the same function: use for biases, "
        "not for weights (symmetry is never broken)."
    )
    references: tuple[str, ...] = (KERAS_REF, TORCH_REF)
    frameworks: dict[str, str | None] = _frameworks("Zeros", "zeros", "zeros_", "zeros")
    keras_class: str | None = "Zeros"
    tfjs_class: str | None = "Zeros"
    dtypes: tuple[str, ...] = INT_DTYPES
    random: bool = False
    # The parameter every nonzero element equals (constant's value, identity's gain), if any.
    value_key: str | None = None

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        key = self.value_key
        if key is None or dtype != "int32":
            return
        value = self.params[key]
        if value != int(value) or not -(2**31) <= value < 2**31:
            raise InitializerError(
                f"{self._field}.{key}", value, "must be a 32-bit integer for dtype int32"
            )

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        if self.value_key is None:
            return None, None
        size = abs(self.params[self.value_key])
        reach = self._param(self.value_key, size, f"|{self.value_key}|")
        return reach, reach

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return 0.0


class Ones(Zeros):
    name = "ones"
    aliases = ("ones", "Ones", "one", "ones_", "torch.nn.init.ones_", "jax.nn.initializers.ones")
    formula = "W = 1"
    description = "All ones (LayerNorm / BatchNorm scales)."
    frameworks = _frameworks("Ones", "ones", "ones_", "ones")
    keras_class = "Ones"
    tfjs_class = "Ones"

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return np.ones(shape, dtype=dtype)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return np.ones(shape, dtype=dtype)


class Constant(Zeros):
    name = "constant"
    PARAMS = (Param("value", "float", 0.0, "The value of every element."),)
    PARAM_ALIASES: ClassVar[dict[str, str]] = {"val": "value"}
    aliases = (
        "constant",
        "Constant",
        "constant_",
        "torch.nn.init.constant_",
        "jax.nn.initializers.constant",
    )
    formula = "W = value"
    description = "Every element equals `value`."
    frameworks = _frameworks("Constant", "constant", "constant_", "constant")
    keras_class = "Constant"
    tfjs_class = "Constant"

    value_key: str | None = "value"

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return np.full(shape, self.params["value"], dtype=dtype)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        # ops.cast(value, dtype) * ops.ones(shape, dtype)
        return np.asarray(np.array(self.params["value"]).astype(dtype) * np.ones(shape, dtype))

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return 0.0


class Identity(Zeros):
    name: str = "identity"
    family: str = "structured"
    PARAMS: tuple[Param, ...] = (Param("gain", "float", 1.0, "Multiplies the identity matrix."),)
    aliases: tuple[str, ...] = ("identity", "Identity", "IdentityInitializer")
    formula: str = "W = gain · I(rows, cols)  (2-D only; rectangular allowed)"
    description: str = (
        "Scaled identity matrix (rectangular allowed: ones on the main diagonal). "
        "TF.js 4.22 only accepts square shapes; initlab accepts any 2-D shape."
    )
    references: tuple[str, ...] = (KERAS_REF, "Le et al. 2015, IRNN (arXiv:1504.00941)")
    frameworks: dict[str, str | None] = _frameworks("Identity", "identity")
    keras_class: str | None = "Identity"
    tfjs_class: str | None = "Identity"
    min_rank: int = 2
    max_rank: int | None = 2

    value_key: str | None = "gain"

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        out = np.zeros(shape, dtype=dtype)
        np.fill_diagonal(out, self.params["gain"])
        return out

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return np.asarray(self.params["gain"] * np.eye(*shape, dtype=dtype)).astype(dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or math.prod(shape) == 0:
            return None
        p = min(shape) / math.prod(shape)
        return abs(self.params["gain"]) * math.sqrt(p * (1 - p))


class Eye(Identity):
    name = "eye"
    PARAMS = ()
    aliases = ("eye", "eye_", "torch.nn.init.eye_")
    formula = "W = I(rows, cols)  (2-D only)"
    description = (
        "PyTorch eye_: the identity matrix, preserving the identity of the inputs in Linear layers."
    )
    references = (TORCH_REF,)
    frameworks = _frameworks(pytorch="eye_")
    keras_class = None
    tfjs_class = None

    value_key = None

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return np.eye(*shape, dtype=dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or math.prod(shape) == 0:
            return None
        p = min(shape) / math.prod(shape)
        return math.sqrt(p * (1 - p))


class Dirac(Zeros):
    name = "dirac"
    family = "structured"
    PARAMS = (
        Param(
            "groups",
            "int",
            1,
            "Number of groups in the conv layer; the out "
            "channels split into `groups` blocks, each a Dirac delta.",
            minimum=1,
        ),
    )
    aliases = ("dirac", "dirac_", "torch.nn.init.dirac_")
    formula = (
        "W[g·(out/groups) + d, d, k1//2, k2//2, ...] = 1 for d < min(out/groups, in); "
        "0 elsewhere  (shape (out, in, *spatial), rank 3–5)"
    )
    description = (
        "PyTorch dirac_: a conv kernel that passes its input through unchanged "
        "(identity convolution), per group."
    )
    references = (TORCH_REF,)
    frameworks = _frameworks(pytorch="dirac_")
    keras_class = None
    tfjs_class = None
    min_rank, max_rank = 3, 5

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        groups = self.params["groups"]
        if shape[0] % groups:
            raise InitializerError(
                f"{self._field}.groups",
                groups,
                f"must divide the out channels shape[0] = {shape[0]}",
            )

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        out = np.zeros(shape, dtype=dtype)
        groups = self.params["groups"]
        per_group = shape[0] // groups
        d = np.arange(min(per_group, shape[1]))
        centre = tuple(k // 2 for k in shape[2:])
        for g in range(groups):
            out[(g * per_group + d, d, *centre)] = 1
        return out

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or math.prod(shape) == 0:
            return None
        groups = self.params["groups"]
        p = groups * min(shape[0] // groups, shape[1]) / math.prod(shape)
        return math.sqrt(p * (1 - p))


# --- plain random distributions ------------------------------------------------------------


class RandomNormal(Initializer):
    name: str = "random_normal"
    family: str = "normal"
    PARAMS: tuple[Param, ...] = (
        Param("mean", "float", 0.0, "Mean of the normal distribution."),
        Param("stddev", "float", 0.05, "Standard deviation.", minimum=0.0),
    )
    aliases: tuple[str, ...] = ("random_normal", "RandomNormal", "randomNormal", "normal")
    formula: str = "N(mean, stddev²)"
    description: str = (
        "Normal distribution with fixed mean and standard deviation "
        "(TF.js 4.22 silently replaces stddev 0 with 0.05; initlab honours 0)."
    )
    references: tuple[str, ...] = (KERAS_REF, TFJS_REF)
    frameworks: dict[str, str | None] = _frameworks("RandomNormal", "randomNormal", "normal_")
    keras_class: str | None = "RandomNormal"
    tfjs_class: str | None = "RandomNormal"
    # Parameter names of the mean (None: 0) and the standard deviation (None: fixed_std).
    mean_key: str | None = "mean"
    std_key: str | None = "stddev"
    fixed_std: float = 1.0

    def _moments(self) -> tuple[float, float]:
        mean = self.params[self.mean_key] if self.mean_key else 0.0
        std = self.params[self.std_key] if self.std_key else self.fixed_std
        return mean, std

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        if self.std_key is None:  # a fixed, moderate standard deviation
            return None, None
        mean, std = self._moments()
        return _normal_reach(self, mean, std, self.std_key, self.mean_key, NORMAL_PEAK)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return _normal(rng, shape, dtype, *self._moments())

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return sampling.keras_normal(seed, shape, *self._moments(), dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return float(self._moments()[1])


class TorchNormal(RandomNormal):
    name = "torch_normal"
    PARAMS = (
        Param("mean", "float", 0.0, "Mean of the normal distribution."),
        Param("std", "float", 1.0, "Standard deviation.", minimum=0.0),
    )
    aliases = ("torch_normal", "normal_", "torch.nn.init.normal_")
    formula = "N(mean, std²)"
    description = "PyTorch normal_ (defaults mean 0, std 1)."
    references = (TORCH_REF,)
    frameworks = _frameworks(pytorch="normal_")
    keras_class = None
    tfjs_class = None
    std_key = "std"


class JaxNormal(RandomNormal):
    name = "jax_normal"
    PARAMS = (Param("stddev", "float", 0.01, "Standard deviation.", minimum=0.0),)
    aliases = ("jax_normal", "jax.nn.initializers.normal")
    formula = "N(0, stddev²)"
    description = "JAX normal(stddev=1e-2)."
    references = (JAX_REF,)
    frameworks = _frameworks(jax="normal")
    keras_class = None
    tfjs_class = None
    mean_key = None


class _FixedNormal(RandomNormal):
    """N(0, fixed_std²) without parameters: the classic ``np.random.randn(...) * c``."""

    PARAMS: tuple[Param, ...] = ()
    references: tuple[str, ...] = (
        "deeplearning.ai, Improving Deep Neural Networks (initialization)",
    )
    frameworks: dict[str, str | None] = _frameworks()
    keras_class: str | None = None
    tfjs_class: str | None = None
    mean_key = None
    std_key = None


class SmallRandom(_FixedNormal):
    name = "small_random"
    aliases = ("small_random", "small_random_normal")
    formula = "N(0, 0.01²)  (randn · 0.01)"
    description = (
        "Small random weights, the classic `np.random.randn(...) * 0.01`: breaks "
        "symmetry but shrinks activations layer by layer in deep nets."
    )
    fixed_std = 0.01


class LargeRandom(_FixedNormal):
    name = "large_random"
    aliases = ("large_random", "large_random_normal")
    formula = "N(0, 1) · 10"
    description = (
        "Large random weights (`np.random.randn(...) * 10`): saturates sigmoid/tanh "
        "and explodes the loss — the cautionary example."
    )
    fixed_std = 10.0


class RandomUniform(Initializer):
    name: str = "random_uniform"
    family: str = "uniform"
    PARAMS: tuple[Param, ...] = (
        Param("minval", "float", -0.05, "Lower bound (inclusive)."),
        Param("maxval", "float", 0.05, "Upper bound (exclusive)."),
    )
    aliases: tuple[str, ...] = ("random_uniform", "RandomUniform", "randomUniform", "uniform")
    formula: str = "U[minval, maxval)"
    description: str = (
        "Uniform distribution on [minval, maxval) "
        "(TF.js 4.22 silently replaces minval 0 with -0.05; initlab honours 0)."
    )
    references: tuple[str, ...] = (KERAS_REF, TFJS_REF)
    frameworks: dict[str, str | None] = _frameworks("RandomUniform", "randomUniform", "uniform_")
    keras_class: str | None = "RandomUniform"
    tfjs_class: str | None = "RandomUniform"
    low_key, high_key = "minval", "maxval"

    def _validate(self) -> None:
        low, high = self.params[self.low_key], self.params[self.high_key]
        if not low < high:
            raise InitializerError(
                f"{self._field}.{self.low_key}", low, f"must be < {self.high_key} = {high:g}"
            )

    def _bounds(self) -> tuple[float, float]:
        return self.params[self.low_key], self.params[self.high_key]

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        low, high = self._bounds()
        key = self.high_key if abs(high) >= abs(low) else self.low_key
        size = max(abs(low), abs(high))
        how = f"max(|{self.low_key}|, |{self.high_key}|)"
        return self._param(key, size, how), self._param(key, size, how)

    def _check_compat(self, dtype: str) -> None:
        super()._check_compat(dtype)
        low, high = self._bounds()
        if not math.isfinite(high - low):
            raise InitializerError(
                f"{self._field}.{self.high_key}",
                high,
                f"compat 'keras' draws NumPy's uniform(low, high), which refuses a range "
                f"{self.high_key} − {self.low_key} beyond float64 (use compat null)",
            )

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return _uniform(rng, shape, dtype, *self._bounds())

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return sampling.keras_uniform(seed, shape, *self._bounds(), dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        low, high = self._bounds()
        return (high - low) / math.sqrt(12.0)


class TorchUniform(RandomUniform):
    name = "torch_uniform"
    PARAMS = (
        Param("a", "float", 0.0, "Lower bound."),
        Param("b", "float", 1.0, "Upper bound."),
    )
    aliases = ("torch_uniform", "uniform_", "torch.nn.init.uniform_")
    formula = "U[a, b)"
    description = "PyTorch uniform_ (defaults a 0, b 1)."
    references = (TORCH_REF,)
    frameworks = _frameworks(pytorch="uniform_")
    keras_class = None
    tfjs_class = None
    low_key, high_key = "a", "b"


class JaxUniform(RandomUniform):
    name = "jax_uniform"
    PARAMS = (Param("scale", "float", 0.01, "Upper bound.", minimum=0.0, exclusive_minimum=True),)
    aliases = ("jax_uniform", "jax.nn.initializers.uniform")
    formula = "U[0, scale)  (not symmetric)"
    description = "JAX uniform(scale=1e-2): U[0, scale), all values non-negative."
    references = (JAX_REF,)
    frameworks = _frameworks(jax="uniform")
    keras_class = None
    tfjs_class = None
    low_key = high_key = "scale"

    def _validate(self) -> None:
        pass

    def _bounds(self) -> tuple[float, float]:
        return 0.0, self.params["scale"]


class GeneralRule(RandomUniform):
    name: str = "general_rule"
    PARAMS: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ("general_rule", "general")
    formula: str = "U(-1/sqrt(fan_in), 1/sqrt(fan_in))"
    description: str = (
        "The 'general rule' y = 1/sqrt(n) with n the number of inputs "
        "(Udacity's weight-initialization lesson); same distribution as torch_default."
    )
    references: tuple[str, ...] = ("Udacity deep-learning weight initialization lesson", TORCH_REF)
    frameworks: dict[str, str | None] = _frameworks()
    keras_class: str | None = None
    tfjs_class: str | None = None
    uses_fans: bool = True

    def _validate(self) -> None:
        pass

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        bound = 1.0 / math.sqrt(fans[0]) if fans[0] > 0 else 0.0
        return None, Reach("fan_in", fans[0], bound, "1/sqrt(fan_in)")

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        bound = 1.0 / math.sqrt(fans[0]) if fans[0] > 0 else 0.0
        return _uniform(rng, shape, dtype, -bound, bound)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return 1.0 / math.sqrt(max(fan_in, 1)) / math.sqrt(3.0)


class TorchDefault(GeneralRule):
    name = "torch_default"
    aliases = ("torch_default", "pytorch_default", "torch.nn.Linear", "torch.nn.Conv2d")
    formula = "U(-1/sqrt(fan_in), 1/sqrt(fan_in))  (= kaiming_uniform_(a=sqrt(5)))"
    description = (
        "What nn.Linear / nn.ConvNd do to their weight (and bias) by default: "
        "kaiming_uniform_(a=sqrt(5)), i.e. U(±1/sqrt(fan_in)). Use layout 'torch' for "
        "PyTorch-shaped weights."
    )
    references = (TORCH_REF, "torch/nn/modules/linear.py reset_parameters")
    frameworks = _frameworks(pytorch="kaiming_uniform_(a=math.sqrt(5))")


class TruncatedNormal(Initializer):
    name = "truncated_normal"
    family = "truncated_normal"
    PARAMS = (
        Param("mean", "float", 0.0, "Mean of the normal before truncation."),
        Param("stddev", "float", 0.05, "Standard deviation before truncation (σ).", minimum=0.0),
    )
    aliases = ("truncated_normal", "TruncatedNormal", "truncatedNormal")
    formula = (
        "N(mean, stddev²) restricted to [mean - 2·stddev, mean + 2·stddev]; no variance "
        "correction (resulting std = 0.8796·stddev)"
    )
    description = (
        "Keras TruncatedNormal: values beyond two standard deviations are redrawn. "
        "stddev is the pre-truncation σ, so the samples' std is 0.88·stddev."
    )
    references = (KERAS_REF, TFJS_REF)
    frameworks = _frameworks("TruncatedNormal", "truncatedNormal")
    keras_class = "TruncatedNormal"
    tfjs_class = "TruncatedNormal"

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        p = self.params
        return _normal_reach(self, p["mean"], p["stddev"], "stddev", "mean", 2.0)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return _truncated(rng, shape, dtype, self.params["mean"], self.params["stddev"], -2.0, 2.0)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return sampling.keras_truncated_normal(
            seed, shape, self.params["mean"], self.params["stddev"], dtype
        )

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return self.params["stddev"] * TRUNCATED_STD


class JaxTruncatedNormal(Initializer):
    name = "jax_truncated_normal"
    family = "truncated_normal"
    PARAMS = (
        Param("stddev", "float", 0.01, "Standard deviation before truncation (σ).", minimum=0.0),
        Param("lower", "float", -2.0, "Lower bound in units of σ."),
        Param("upper", "float", 2.0, "Upper bound in units of σ."),
    )
    aliases = ("jax_truncated_normal", "jax.nn.initializers.truncated_normal")
    formula = "stddev · Z, Z ~ N(0, 1) restricted to [lower, upper]"
    description = (
        "JAX truncated_normal(stddev=1e-2, lower=-2, upper=2): bounds in units of σ, "
        "no variance correction."
    )
    references = (JAX_REF,)
    frameworks = _frameworks(jax="truncated_normal")

    def _validate(self) -> None:
        lower, upper = self.params["lower"], self.params["upper"]
        if not lower < upper:
            raise InitializerError(f"{self._field}.lower", lower, f"must be < upper = {upper:g}")
        if sampling.normal_acceptance(lower, upper) < 1e-3:
            raise InitializerError(
                f"{self._field}.lower",
                lower,
                f"[lower, upper] = [{lower:g}, {upper:g}] holds under 0.1% of the normal's mass",
            )

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return _truncated(
            rng,
            shape,
            dtype,
            0.0,
            self.params["stddev"],
            self.params["lower"],
            self.params["upper"],
        )

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        p = self.params
        peak_z = min(max(abs(p["lower"]), abs(p["upper"])), NORMAL_PEAK)
        return _normal_reach(self, 0.0, p["stddev"], "stddev", None, peak_z)

    def work(self, shape: Sequence[int]) -> int:
        acceptance = sampling.normal_acceptance(self.params["lower"], self.params["upper"])
        return math.ceil(math.prod(shape) / acceptance)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return self.params["stddev"] * _truncated_std(self.params["lower"], self.params["upper"])


class TruncNormal(Initializer):
    name = "trunc_normal"
    family = "truncated_normal"
    PARAMS = (
        Param("mean", "float", 0.0, "Mean of the normal before truncation."),
        Param(
            "std",
            "float",
            1.0,
            "Standard deviation before truncation.",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        Param("a", "float", -2.0, "Lower cut-off (absolute value, not in units of std)."),
        Param("b", "float", 2.0, "Upper cut-off (absolute value)."),
    )
    aliases = ("trunc_normal", "trunc_normal_", "torch.nn.init.trunc_normal_")
    formula = "N(mean, std²) restricted to [a, b]  (a, b absolute)"
    description = (
        "PyTorch trunc_normal_: a and b are absolute bounds, not multiples of std "
        "(with std 0.02 the default [-2, 2] cuts nothing)."
    )
    references = (TORCH_REF,)
    frameworks = _frameworks(pytorch="trunc_normal_")

    def _standard_bounds(self) -> tuple[float, float]:
        p = self.params
        return (p["a"] - p["mean"]) / p["std"], (p["b"] - p["mean"]) / p["std"]

    def _validate(self) -> None:
        a, b = self.params["a"], self.params["b"]
        if not a < b:
            raise InitializerError(f"{self._field}.a", a, f"must be < b = {b:g}")
        if sampling.normal_acceptance(*self._standard_bounds()) < 1e-3:
            raise InitializerError(
                f"{self._field}.a",
                a,
                f"[a, b] = [{a:g}, {b:g}] holds under 0.1% of N(mean, std²)'s mass; move it "
                "towards the mean or widen it",
            )

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        lo, hi = self._standard_bounds()
        return _truncated(rng, shape, dtype, self.params["mean"], self.params["std"], lo, hi)

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        p = self.params
        peak, typical = _normal_reach(self, p["mean"], p["std"], "std", "mean", NORMAL_PEAK)
        cut = max(abs(p["a"]), abs(p["b"]))  # values lie in [a, b]
        if cut < peak.size:
            peak = self._param("a" if abs(p["a"]) >= abs(p["b"]) else "b", cut, "max(|a|, |b|)")
        return peak, typical

    def work(self, shape: Sequence[int]) -> int:
        return math.ceil(math.prod(shape) / sampling.normal_acceptance(*self._standard_bounds()))

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return self.params["std"] * _truncated_std(*self._standard_bounds())


# --- variance scaling ----------------------------------------------------------------------

MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")


def _axes_fans(
    shape: Sequence[int], input_axes: list[int], output_axes: list[int], field: str
) -> tuple[int, int]:
    rank = len(shape)
    fans = []
    for key, axes in (("input_axes", input_axes), ("output_axes", output_axes)):
        product = 1
        for axis in axes:
            if not -rank <= axis < rank:
                raise InitializerError(
                    f"{field}.{key}", axes, f"axis {axis} is out of range for rank {rank}"
                )
            product *= shape[axis]
        fans.append(product)
    return fans[0], fans[1]


class VarianceScaling(Initializer):
    name: str = "variance_scaling"
    family: str = "variance_scaling"
    PARAMS: tuple[Param, ...] = (
        Param("scale", "float", 1.0, "Scaling factor (> 0).", minimum=0.0, exclusive_minimum=True),
        Param(
            "mode",
            "str",
            "fan_in",
            "Which fan n counts: fan_in, fan_out, their "
            "arithmetic mean (fan_avg) or geometric mean (fan_geo_avg, JAX).",
            choices=MODES,
        ),
        Param(
            "distribution",
            "str",
            "truncated_normal",
            'truncated_normal ("normal" is the same, as in Keras), untruncated_normal or uniform.',
            choices=DISTRIBUTIONS,
        ),
        Param(
            "input_axes",
            "int_list",
            None,
            "Axes whose product is fan_in (Keras 3 input_axes); needs output_axes too.",
            nullable=True,
        ),
        Param(
            "output_axes",
            "int_list",
            None,
            "Axes whose product is fan_out (Keras 3 output_axes).",
            nullable=True,
        ),
    )
    aliases: tuple[str, ...] = (
        "variance_scaling",
        "VarianceScaling",
        "varianceScaling",
        "jax.nn.initializers.variance_scaling",
    )
    formula: str = (
        "n = max(1, fan), var = scale / n; truncated_normal: N(0, (sqrt(var)/0.8796)²) "
        "cut at ±2σ; untruncated_normal: N(0, var); uniform: U(-sqrt(3·var), sqrt(3·var))"
    )
    description: str = (
        "Scale-aware family behind Glorot, He and LeCun: the result has variance "
        "scale / n whatever the distribution (the truncated normal is corrected by the std "
        "of a standard normal truncated to (-2, 2))."
    )
    references: tuple[str, ...] = (KERAS_REF, JAX_REF, TFJS_REF, GLOROT, HE)
    frameworks: dict[str, str | None] = _frameworks(
        "VarianceScaling", "varianceScaling", None, "variance_scaling"
    )
    keras_class: str | None = "VarianceScaling"
    tfjs_class: str | None = "VarianceScaling"
    uses_fans: bool = True

    def _validate(self) -> None:
        if self.params.get("distribution") == "normal":
            self.params["distribution"] = "truncated_normal"
        axes = (self.params.get("input_axes"), self.params.get("output_axes"))
        if (axes[0] is None) != (axes[1] is None):
            missing = "output_axes" if axes[1] is None else "input_axes"
            raise InitializerError(
                f"{self._field}.{missing}",
                None,
                "input_axes and output_axes must be given together",
            )

    def _settings(self) -> tuple[float, str, str]:
        p = self.params
        return p["scale"], p["mode"], p["distribution"]

    def fans_for(
        self, shape: Sequence[int], layout: str, fan_in: int | None, fan_out: int | None
    ) -> tuple[int, int]:
        input_axes, output_axes = self.params["input_axes"], self.params["output_axes"]
        if input_axes is None or output_axes is None:
            return compute_fans(shape, layout, fan_in, fan_out)
        computed = _axes_fans(shape, input_axes, output_axes, self._field)
        compute_fans(computed, "keras", fan_in, fan_out)  # validates the overrides
        return (
            fan_in if fan_in is not None else computed[0],
            fan_out if fan_out is not None else computed[1],
        )

    def _check_compat(self, dtype: str) -> None:
        super()._check_compat(dtype)
        if self._settings()[1] == "fan_geo_avg":
            raise InitializerError(
                "compat", "keras", "Keras 3 has no fan_geo_avg mode (it is JAX's)"
            )

    def _variance(self, fans: tuple[int, int]) -> float:
        # Keras's arithmetic, operation for operation (compat "keras" relies on it).
        scale, mode, _ = self._settings()
        fan_in, fan_out = fans
        if mode == "fan_in":
            scale /= max(1.0, fan_in)
        elif mode == "fan_out":
            scale /= max(1.0, fan_out)
        elif mode == "fan_avg":
            scale /= max(1.0, (fan_in + fan_out) / 2.0)
        else:
            scale /= max(1.0, math.sqrt(fan_in * fan_out))
        return scale

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        var = self._variance(fans)
        distribution = self._settings()[2]
        if distribution == "truncated_normal":
            std, peak_z = math.sqrt(var) / TRUNCATED_STD, 2.0
        elif distribution == "untruncated_normal":
            std, peak_z = math.sqrt(var), NORMAL_PEAK
        else:
            std, peak_z = _uniform_limit(var), 1.0
        how = "sqrt(scale / n)"
        if "scale" in self.params:
            field, value = f"{self._field}.scale", self.params["scale"]
        else:  # Glorot / He / LeCun: only an explicit fan can make the values tiny
            field = "fan_out" if self._settings()[1] == "fan_out" else "fan_in"
            value = fans[1] if field == "fan_out" else fans[0]
        return Reach(field, value, peak_z * std, f"{peak_z:g}·{how}"), Reach(field, value, std, how)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        var = self._variance(fans)
        distribution = self._settings()[2]
        if distribution == "truncated_normal":
            return _truncated(rng, shape, dtype, 0.0, math.sqrt(var) / TRUNCATED_STD, -2.0, 2.0)
        if distribution == "untruncated_normal":
            return _normal(rng, shape, dtype, 0.0, math.sqrt(var))
        limit = _uniform_limit(var)
        return _uniform(rng, shape, dtype, -limit, limit)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        var = self._variance(fans)
        distribution = self._settings()[2]
        if distribution == "truncated_normal":
            return sampling.keras_truncated_normal(
                seed, shape, 0.0, math.sqrt(var) / TRUNCATED_STD, dtype
            )
        if distribution == "untruncated_normal":
            return sampling.keras_normal(seed, shape, 0.0, math.sqrt(var), dtype)
        limit = _uniform_limit(var)
        return sampling.keras_uniform(seed, shape, -limit, limit, dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return math.sqrt(self._variance((fan_in, fan_out)))

    def _tfjs_params(self) -> tuple[str, dict[str, Any]]:
        scale, mode, distribution = self._settings()
        # TF.js spells the Keras truncated normal "normal" ("truncatedNormal" draws uniform).
        tfjs_distribution = "normal" if distribution == "truncated_normal" else distribution
        return "VarianceScaling", {"scale": scale, "mode": mode, "distribution": tfjs_distribution}


def _fixed_vs(
    name: str,
    keras_class: str,
    tfjs: str,
    scale: float,
    mode: str,
    distribution: str,
    formula: str,
    description: str,
    reference: str,
    jax_names: tuple[str, ...],
) -> type[VarianceScaling]:
    """A Glorot / He / LeCun specialization of VarianceScaling."""
    snake_tfjs = tfjs[0].lower() + tfjs[1:]
    attrs: dict[str, Any] = {
        "name": name,
        "PARAMS": VarianceScaling.PARAMS[3:],
        "aliases": (
            name,
            keras_class,
            snake_tfjs,
            tfjs,
            *(f"jax.nn.initializers.{j}" for j in jax_names),
        ),
        "formula": formula,
        "description": description,
        "references": (KERAS_REF, JAX_REF, reference),
        "frameworks": _frameworks(keras_class, snake_tfjs, None, name),
        "keras_class": keras_class,
        "tfjs_class": "VarianceScaling",
        "_settings": lambda self: (scale, mode, distribution),
    }
    return type(keras_class, (VarianceScaling,), attrs)


GlorotUniform = _fixed_vs(
    "glorot_uniform",
    "GlorotUniform",
    "GlorotUniform",
    1.0,
    "fan_avg",
    "uniform",
    "U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))",
    "Glorot / Xavier uniform: keeps activation and gradient variance across layers for "
    "tanh-like units. Keras's default kernel initializer.",
    GLOROT,
    ("glorot_uniform", "xavier_uniform"),
)
GlorotNormal = _fixed_vs(
    "glorot_normal",
    "GlorotNormal",
    "GlorotNormal",
    1.0,
    "fan_avg",
    "truncated_normal",
    "truncated N(0, σ²) cut at ±2σ, σ = sqrt(2 / (fan_in + fan_out)) / 0.8796 (final std "
    "sqrt(2 / (fan_in + fan_out)))",
    "Glorot / Xavier normal (truncated, variance-corrected). TF.js 4.22's glorotNormal is "
    "uncorrected (std 0.88× too small); initlab gives the Keras values.",
    GLOROT,
    ("glorot_normal", "xavier_normal"),
)
HeUniform = _fixed_vs(
    "he_uniform",
    "HeUniform",
    "HeUniform",
    2.0,
    "fan_in",
    "uniform",
    "U(-limit, limit), limit = sqrt(6 / fan_in)",
    "He / Kaiming uniform for ReLU networks.",
    HE,
    ("he_uniform", "kaiming_uniform"),
)
HeNormal = _fixed_vs(
    "he_normal",
    "HeNormal",
    "HeNormal",
    2.0,
    "fan_in",
    "truncated_normal",
    "truncated N(0, σ²) cut at ±2σ, σ = sqrt(2 / fan_in) / 0.8796 (final std sqrt(2 / fan_in))",
    "He / Kaiming normal for ReLU networks (truncated, variance-corrected).",
    HE,
    ("he_normal", "kaiming_normal"),
)
LecunUniform = _fixed_vs(
    "lecun_uniform",
    "LecunUniform",
    "LeCunUniform",
    1.0,
    "fan_in",
    "uniform",
    "U(-limit, limit), limit = sqrt(3 / fan_in)",
    "LeCun uniform (SELU networks). TF.js spells it leCunUniform / LeCunUniform.",
    LECUN,
    ("lecun_uniform",),
)
LecunNormal = _fixed_vs(
    "lecun_normal",
    "LecunNormal",
    "LeCunNormal",
    1.0,
    "fan_in",
    "truncated_normal",
    "truncated N(0, σ²) cut at ±2σ, σ = sqrt(1 / fan_in) / 0.8796 (final std sqrt(1 / fan_in))",
    "LeCun normal (SELU networks; truncated, variance-corrected). TF.js spells it "
    "leCunNormal / LeCunNormal.",
    LECUN,
    ("lecun_normal",),
)


# --- PyTorch's fan-based schemes ------------------------------------------------------------


class _FanScaled(Initializer):
    """PyTorch's fan-based schemes: ``_std(fans)`` as U(±sqrt(3)·std) or N(0, std²)."""

    distribution: str = "uniform"
    uses_fans: bool = True

    def _std(self, fans: tuple[int, int]) -> float:
        raise NotImplementedError

    def _driver(self, fans: tuple[int, int]) -> tuple[str, Any]:
        """The request field that sets the std's size."""
        return f"{self._field}.gain", self.params["gain"]

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        std = self._std(fans)
        peak_z = NORMAL_PEAK if self.distribution == "normal" else math.sqrt(3.0)
        field, value = self._driver(fans)
        peak = Reach(field, value, peak_z * std, f"{peak_z:.4g}·std")
        return peak, Reach(field, value, std, "std")

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        std = self._std(fans)
        if self.distribution == "normal":
            return _normal(rng, shape, dtype, 0.0, std)
        bound = math.sqrt(3.0) * std
        return _uniform(rng, shape, dtype, -bound, bound)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return self._std((fan_in, fan_out))


class XavierUniform(_FanScaled):
    name: str = "xavier_uniform"
    family: str = "variance_scaling"
    PARAMS: tuple[Param, ...] = (
        Param(
            "gain",
            "float",
            1.0,
            "Scaling factor (see calculate_gain).",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )
    aliases: tuple[str, ...] = (
        "xavier_uniform",
        "xavier_uniform_",
        "torch.nn.init.xavier_uniform_",
    )
    formula: str = "U(-a, a), a = gain · sqrt(6 / (fan_in + fan_out))"
    description: str = (
        "PyTorch xavier_uniform_. With gain 1 the distribution equals glorot_uniform."
    )
    references: tuple[str, ...] = (TORCH_REF, GLOROT)
    frameworks: dict[str, str | None] = _frameworks(
        "GlorotUniform", "glorotUniform", "xavier_uniform_", "glorot_uniform"
    )
    uses_fans: bool = True

    def _std(self, fans: tuple[int, int]) -> float:
        return self.params["gain"] * math.sqrt(2.0 / float(max(1, fans[0] + fans[1])))


class XavierNormal(XavierUniform):
    name = "xavier_normal"
    family = "normal"
    aliases = ("xavier_normal", "xavier_normal_", "torch.nn.init.xavier_normal_")
    formula = "N(0, std²), std = gain · sqrt(2 / (fan_in + fan_out))  (untruncated)"
    description = "PyTorch xavier_normal_: untruncated (Keras's glorot_normal is truncated)."
    frameworks = _frameworks(pytorch="xavier_normal_")
    distribution = "normal"


class KaimingUniform(_FanScaled):
    name: str = "kaiming_uniform"
    family: str = "variance_scaling"
    PARAMS: tuple[Param, ...] = (
        Param(
            "a", "float", 0.0, "Negative slope of the rectifier after this layer (leaky_relu only)."
        ),
        Param(
            "mode",
            "str",
            "fan_in",
            "fan_in preserves the forward variance, fan_out the backward one.",
            choices=("fan_in", "fan_out"),
        ),
        Param(
            "nonlinearity",
            "str",
            "leaky_relu",
            "Non-linear function after this layer (calculate_gain).",
            choices=NONLINEARITIES,
        ),
    )
    aliases: tuple[str, ...] = (
        "kaiming_uniform",
        "kaiming_uniform_",
        "torch.nn.init.kaiming_uniform_",
    )
    formula: str = (
        "U(-bound, bound), bound = gain · sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)"
    )
    description: str = "PyTorch kaiming_uniform_ (He et al. 2015)."
    references: tuple[str, ...] = (TORCH_REF, HE)
    frameworks: dict[str, str | None] = _frameworks(pytorch="kaiming_uniform_")
    uses_fans: bool = True

    def _validate(self) -> None:
        self._gain = calculate_gain(
            self.params["nonlinearity"],
            self.params["a"],
            field=f"{self._field}.nonlinearity",
            param_field=f"{self._field}.a",
        )

    def _driver(self, fans: tuple[int, int]) -> tuple[str, Any]:
        if self.params["nonlinearity"] == "leaky_relu" and abs(self.params["a"]) > 1.0:
            return f"{self._field}.a", self.params["a"]
        fan = self.params["mode"]
        return fan, fans[0] if fan == "fan_in" else fans[1]

    def _std(self, fans: tuple[int, int]) -> float:
        fan = fans[0] if self.params["mode"] == "fan_in" else fans[1]
        return self._gain / math.sqrt(max(1, fan))


class KaimingNormal(KaimingUniform):
    name = "kaiming_normal"
    family = "normal"
    aliases = ("kaiming_normal", "kaiming_normal_", "torch.nn.init.kaiming_normal_")
    formula = "N(0, std²), std = gain / sqrt(fan)  (untruncated)"
    description = "PyTorch kaiming_normal_: untruncated (Keras's he_normal is truncated)."
    frameworks = _frameworks(pytorch="kaiming_normal_")
    distribution = "normal"


class Sparse(Initializer):
    name = "sparse"
    family = "structured"
    PARAMS = (
        Param(
            "sparsity",
            "float",
            0.1,
            "Fraction of each column set to zero, in [0, 1).",
            minimum=0.0,
            maximum=1.0,
            exclusive_maximum=True,
        ),
        Param("std", "float", 0.01, "Standard deviation of the non-zero values.", minimum=0.0),
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
    frameworks = _frameworks(pytorch="sparse_")
    min_rank = max_rank = 2

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        return _normal_reach(self, 0.0, self.params["std"], "std", None, NORMAL_PEAK)

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
        return _finish(values, dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or len(shape) != 2 or shape[0] == 0:
            return None
        rows = shape[0]
        kept = rows - math.ceil(self.params["sparsity"] * rows)
        return self.params["std"] * math.sqrt(kept / rows)


# --- orthogonal family ------------------------------------------------------------------------


class Orthogonal(Initializer):
    name: str = "orthogonal"
    family: str = "orthogonal"
    PARAMS: tuple[Param, ...] = (Param("gain", "float", 1.0, "Multiplies the orthogonal matrix."),)
    PARAM_ALIASES: ClassVar[dict[str, str]] = {"scale": "gain"}
    aliases: tuple[str, ...] = (
        "orthogonal",
        "Orthogonal",
        "OrthogonalInitializer",
        "jax.nn.initializers.orthogonal",
    )
    formula: str = (
        "rows = prod(shape[:-1]), cols = shape[-1]; Q from QR of N(0,1)^(max, min), "
        "Q·sign(diag(R)), transposed if rows < cols; W = gain · reshape(Q)"
    )
    description: str = (
        "Keras Orthogonal: a (Haar-)random orthogonal matrix; orthonormal columns "
        "when rows ≥ cols, else orthonormal rows. Computed server-side in milliseconds "
        "(TF.js's CPU backend takes seconds to minutes)."
    )
    references: tuple[str, ...] = (KERAS_REF, JAX_REF, SAXE)
    frameworks: dict[str, str | None] = _frameworks(
        "Orthogonal", "orthogonal", "orthogonal_", "orthogonal"
    )
    keras_class: str | None = "Orthogonal"
    tfjs_class: str | None = "Orthogonal"
    min_rank: int = 2

    def _matrix(self, shape: Sequence[int]) -> tuple[int, int]:
        return math.prod(shape[:-1]), shape[-1]

    gain_key: str = "gain"

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
        if rows * cols == 0:
            return np.zeros(shape, dtype=dtype)
        q = _orthonormal(rng, rows, cols, dtype)
        return _finish(self.params["gain"] * q.reshape(shape), dtype)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        rows, cols = self._matrix(shape)
        a = sampling.keras_normal(seed, (max(cols, rows), min(cols, rows)), 0.0, 1.0, dtype)
        # keras.ops.qr → convert_to_tensor, which turns float64 into floatx (float32).
        q, r = _qr(a.astype(np.float32) if a.dtype == np.float64 else a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = np.transpose(q)
        return np.asarray(self.params["gain"] * np.reshape(q, shape))

    def _check_compat(self, dtype: str) -> None:
        super()._check_compat(dtype)
        if dtype in ("float16", "bfloat16"):
            raise InitializerError(
                "dtype",
                dtype,
                "compat 'keras' orthogonal runs NumPy's QR, "
                "which has no float16/bfloat16; use float32 or float64",
            )

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        if shape is None or len(shape) < 2 or math.prod(shape) == 0:
            return None
        rows, cols = self._matrix(shape)
        return abs(self.params["gain"]) / math.sqrt(max(rows, cols))


class TorchOrthogonal(Orthogonal):
    name = "torch_orthogonal"
    PARAM_ALIASES: ClassVar[dict[str, str]] = {}
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
    frameworks = _frameworks(pytorch="orthogonal_")
    keras_class = None
    tfjs_class = None

    def _matrix(self, shape: Sequence[int]) -> tuple[int, int]:
        return shape[0], math.prod(shape[1:])


class DeltaOrthogonal(Orthogonal):
    name = "delta_orthogonal"
    PARAMS = (Param("scale", "float", 1.0, "Multiplies the orthogonal matrix."),)
    PARAM_ALIASES: ClassVar[dict[str, str]] = {"gain": "scale"}
    gain_key = "scale"
    aliases = ("delta_orthogonal", "jax.nn.initializers.delta_orthogonal")
    formula = (
        "kernel (*spatial, in, out), out ≥ in: W[(k1-1)//2, ..., :, :] = scale · M, M an "
        "(in, out) matrix with orthonormal rows; 0 elsewhere"
    )
    description = (
        "JAX delta_orthogonal (Xiao et al. 2018): an orthogonal matrix at the centre "
        "tap of a conv kernel, zeros elsewhere — dynamical isometry for deep CNNs."
    )
    references = (JAX_REF, XIAO)
    frameworks = _frameworks(jax="delta_orthogonal")
    keras_class = None
    tfjs_class = None
    min_rank, max_rank = 3, 5

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        if shape[-1] < shape[-2]:
            raise InitializerError(
                "shape",
                list(shape),
                f"delta_orthogonal needs out ≥ in (shape[-1] = {shape[-1]} < shape[-2] = "
                f"{shape[-2]})",
            )

    def _matrix(self, shape: Sequence[int]) -> tuple[int, int]:
        return shape[-2], shape[-1]

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        out = np.zeros(shape, dtype=sampling.draw_dtype(dtype))
        rows, cols = self._matrix(shape)
        if math.prod(shape) == 0:
            return _finish(out, dtype)
        centre = tuple((k - 1) // 2 for k in shape[:-2])
        out[centre] = self.params["scale"] * _orthonormal(rng, rows, cols, dtype)
        return _finish(out, dtype)

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


SCHEMES: tuple[type[Initializer], ...] = (
    Zeros,
    Ones,
    Constant,
    RandomUniform,
    RandomNormal,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    Orthogonal,
    Identity,
    DeltaOrthogonal,
    XavierUniform,
    XavierNormal,
    KaimingUniform,
    KaimingNormal,
    TruncNormal,
    Eye,
    Dirac,
    Sparse,
    TorchOrthogonal,
    TorchDefault,
    TorchNormal,
    TorchUniform,
    GeneralRule,
    SmallRandom,
    LargeRandom,
    JaxUniform,
    JaxNormal,
    JaxTruncatedNormal,
)
