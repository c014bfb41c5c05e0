"""Deterministic schemes: zeros, ones, constant, identity, eye, dirac, and Keras's STFT.

Kernel layout: ``(*spatial, in, out)`` (Keras); ``dirac`` reads PyTorch's
``(out, in, *spatial)``, ``stft`` Keras's conv kernel ``(frame_length, 1, n_bins)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from app.initializers.base import Initializer, Param, Reach
from app.initializers.errors import InitializerError
from app.initializers.schemes._common import INT_DTYPES, KERAS_REF, TORCH_REF, frameworks


class _Fixed(Initializer):
    """A scheme without randomness: ``_values(shape, dtype)`` is the tensor (any stream)."""

    random: bool = False
    dtypes: tuple[str, ...] = INT_DTYPES
    references: tuple[str, ...] = (KERAS_REF, TORCH_REF)
    # The parameter every nonzero element equals (constant's value, identity's gain), if any.
    value_key: ClassVar[str | None] = None

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        raise NotImplementedError

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
        return self._values(shape, dtype)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return self._values(shape, dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return 0.0


def _diagonal_std(shape: Sequence[int] | None, ones: int | None, gain: float) -> float | None:
    """Std of a tensor whose ``ones`` entries (default min(shape)) are ``gain``, the rest 0."""
    if shape is None or math.prod(shape) == 0:
        return None
    p = (min(shape) if ones is None else ones) / math.prod(shape)
    return abs(gain) * math.sqrt(p * (1 - p))


class Zeros(_Fixed):
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
    frameworks: dict[str, str | None] = frameworks("Zeros", "zeros", "zeros_", "zeros")
    keras_class: str | None = "Zeros"
    tfjs_class: str | None = "Zeros"

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)


class Ones(_Fixed):
    name = "ones"
    family = "constant"
    aliases = ("ones", "Ones", "one", "ones_", "torch.nn.init.ones_", "jax.nn.initializers.ones")
    formula = "W = 1"
    description = "All ones (LayerNorm / BatchNorm scales)."
    frameworks = frameworks("Ones", "ones", "ones_", "ones")
    keras_class = "Ones"
    tfjs_class = "Ones"

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.ones(shape, dtype=dtype)


class Constant(_Fixed):
    name = "constant"
    family = "constant"
    PARAMS = (Param("value", "number", 0.0, "The value of every element."),)
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
    frameworks = frameworks("Constant", "constant", "constant_", "constant")
    keras_class = "Constant"
    tfjs_class = "Constant"
    value_key = "value"

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.full(shape, self.params["value"], dtype=dtype)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        # ops.cast(value, dtype) * ops.ones(shape, dtype)
        return np.asarray(np.array(self.params["value"]).astype(dtype) * np.ones(shape, dtype))


class Identity(_Fixed):
    name: str = "identity"
    family: str = "structured"
    PARAMS: tuple[Param, ...] = (Param("gain", "number", 1.0, "Multiplies the identity matrix."),)
    aliases: tuple[str, ...] = ("identity", "Identity", "IdentityInitializer")
    formula: str = "W = gain · I(rows, cols)  (2-D only; rectangular allowed)"
    description: str = (
        "Scaled identity matrix (rectangular allowed: ones on the main diagonal). "
        "TF.js 4.22 only accepts square shapes; initlab accepts any 2-D shape."
    )
    references: tuple[str, ...] = (KERAS_REF, "Le et al. 2015, IRNN (arXiv:1504.00941)")
    frameworks: dict[str, str | None] = frameworks("Identity", "identity")
    keras_class: str | None = "Identity"
    tfjs_class: str | None = "Identity"
    min_rank: int = 2
    max_rank: int | None = 2
    value_key = "gain"

    def _tfjs_shape_unsupported(self, shape: tuple[int, ...], fans: tuple[int, int]) -> str | None:
        if shape[0] == shape[1]:
            return None
        return f"TF.js 4.22's Identity takes square matrices only, not shape {list(shape)}"

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
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
        return _diagonal_std(shape, None, self.params["gain"])


class Eye(_Fixed):
    name = "eye"
    family = "structured"
    aliases = ("eye", "eye_", "torch.nn.init.eye_")
    formula = "W = I(rows, cols)  (2-D only)"
    description = (
        "PyTorch eye_: the identity matrix, preserving the identity of the inputs in Linear layers."
    )
    references = (TORCH_REF,)
    frameworks = frameworks(pytorch="eye_")
    min_rank = 2
    max_rank = 2

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.eye(*shape, dtype=dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return _diagonal_std(shape, None, 1.0)


class Dirac(_Fixed):
    name = "dirac"
    family = "structured"
    PARAMS = (
        Param(
            "groups",
            "integer",
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
    frameworks = frameworks(pytorch="dirac_")
    min_rank, max_rank = 3, 5

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        groups = self.params["groups"]
        if shape[0] % groups:
            raise InitializerError(
                f"{self._field}.groups",
                groups,
                f"must divide the out channels shape[0] = {shape[0]}",
            )

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
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
        return _diagonal_std(shape, groups * min(shape[0] // groups, shape[1]), 1.0)


# SciPy's cosine-sum windows (scipy.signal.windows: general_cosine's coefficients; hann and
# hamming are general_hamming(alpha) = (alpha, 1 - alpha); boxcar is the one-term sum).
_WINDOWS: dict[str, tuple[float, ...]] = {
    "hann": (0.5, 1.0 - 0.5),
    "hamming": (0.54, 1.0 - 0.54),
    "blackman": (0.42, 0.50, 0.08),
    "nuttall": (0.3635819, 0.4891775, 0.1365995, 0.0106411),
    "blackmanharris": (0.35875, 0.48829, 0.14128, 0.01168),
    "flattop": (0.21557895, 0.41663158, 0.277263158, 0.083578947, 0.006947368),
    "boxcar": (1.0,),
}


def _window(name: str, length: int, periodic: bool) -> np.ndarray:
    """SciPy's ``get_window(name, length, fftbins=periodic)`` for the cosine-sum windows,
    operation for operation (``scipy.signal.windows.general_cosine``), float64."""
    if length <= 1:
        return np.ones(length, dtype=np.float64)
    points = length + 1 if periodic else length
    fac = np.linspace(-np.pi, np.pi, points, dtype=np.float64)
    w = np.zeros(points, dtype=np.float64)
    for k, a in enumerate(_WINDOWS[name]):
        w += a * np.cos(k * fac)
    return w[:-1] if periodic else w


class STFT(Initializer):
    name = "stft"
    family = "structured"
    PARAMS = (
        Param(
            "side",
            "string",
            "real",
            "real: the cosine (real) part of the DFT, imag: the sine (imaginary) part.",
            choices=("real", "imag"),
        ),
        Param(
            "window",
            "string",
            "hann",
            "Window over the time axis (scipy.signal.get_window name), null for none.",
            choices=tuple(_WINDOWS),
            nullable=True,
        ),
        Param(
            "scaling",
            "string",
            "density",
            "Window normalization: density divides by its L2 norm, spectrum by its L1 "
            "norm, null by nothing.",
            choices=("density", "spectrum"),
            nullable=True,
        ),
        Param(
            "periodic",
            "boolean",
            False,
            "Periodic (DFT-even) window instead of a symmetric one.",
        ),
    )
    aliases = ("stft", "STFT", "STFTInitializer")
    formula = (
        "shape (T, 1, F): W[t, 0, f] = cos(-2π·t·f / (2(F-1))) (real) or sin(...) (imag), "
        "times win[t] / scale; scale = sqrt(Σ win²) (density), Σ |win| (spectrum) or 1"
    )
    description = (
        "Keras STFT: a Conv1D kernel computing the real or imaginary part of a short-time "
        "Fourier transform over T samples (F = fft_length // 2 + 1 bins; Keras's "
        "STFTSpectrogram layer). Windows: SciPy's cosine-sum family (hann, hamming, blackman, "
        "nuttall, blackmanharris, flattop, boxcar) or none."
    )
    references = (KERAS_REF + "constant_initializers.py", "scipy.signal.get_window")
    frameworks = frameworks("STFT")
    keras_class = "STFT"
    random = False
    min_rank = max_rank = 3

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        if shape[1] != 1 or shape[2] < 2:
            raise InitializerError(
                "shape",
                list(shape),
                "stft kernels are (frame_length, 1, fft_length // 2 + 1) with at least 2 "
                "frequency bins",
            )
        window = self.params["window"]
        scaled = window is not None and self.params["scaling"] is not None
        if scaled and not np.any(_window(window, shape[0], self.params["periodic"])):
            raise InitializerError(
                f"{self._field}.window",
                window,
                f"a {window} window of length {shape[0]} is all zeros: it cannot be "
                "normalized (use a longer frame, periodic true or scaling null)",
            )

    def _check_compat(self, dtype: str) -> None:
        super()._check_compat(dtype)
        if dtype == "float64":
            raise InitializerError(
                "dtype",
                dtype,
                "Keras 3's NumPy backend computes STFT kernels in float32 even when asked for "
                "float64; use compat 'keras' with float32, or compat null for float64 values",
            )

    def _kernel(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Keras's arithmetic in ``dtype``, operation for operation."""
        frames, _, bins = shape
        freq = (np.arange(bins, dtype=dtype) / dtype.type((bins - 1) * 2)).reshape(1, 1, bins)
        time = np.arange(frames, dtype=dtype).reshape(frames, 1, 1)
        args = ((dtype.type(-2) * time) * freq) * np.arccos(dtype.type(-1))
        kernel = (np.cos(args) if self.params["side"] == "real" else np.sin(args)).astype(dtype)
        window = self.params["window"]
        if window is None:
            return kernel
        win = _window(window, frames, self.params["periodic"]).astype(dtype).reshape(-1, 1, 1)
        scaling = self.params["scaling"]
        if scaling == "density":
            scale = np.sqrt(np.sum(np.square(win)))
        elif scaling == "spectrum":
            scale = np.sum(np.abs(win))
        else:
            scale = dtype.type(1)
        return ((kernel * win) / scale).astype(dtype)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        kernel = self._kernel(shape, np.dtype(np.float64)).astype(dtype)
        kernel += dtype.type(0)  # +0.0 where win[t] = 0 meets a negative cos (Keras: -0.0)
        return kernel

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return self._kernel(shape, dtype)
