"""Plain distributions: normal and uniform in their Keras, PyTorch and JAX spellings, the
classic small/large random, the general rule and PyTorch's layer default (the truncated
normals are in ``truncated``).

Kernel layout: ``(*spatial, in, out)`` (Keras); only ``general_rule`` / ``torch_default`` read
the fans (fan_in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from app.initializers import keras_rng
from app.initializers.base import Initializer, Param, Reach
from app.initializers.errors import InitializerError
from app.initializers.sampling import NORMAL_PEAK
from app.initializers.schemes._common import (
    JAX_REF,
    KERAS_REF,
    TFJS_REF,
    TFJS_ZERO_STDDEV,
    TORCH_REF,
    check_within,
    frameworks,
    normal,
    normal_reach,
    uniform,
)

DLAI_REF = "deeplearning.ai, Improving Deep Neural Networks (initialization)"


# --- normal ------------------------------------------------------------------------------------


class _Normal(Initializer):
    """N(mean, std²); ``_moments`` says where mean and std come from."""

    family: str = "normal"
    # Parameter names of the mean (None: 0) and the standard deviation (None: fixed).
    mean_key: str | None = None
    std_key: str | None = None

    def _moments(self) -> tuple[float, float]:
        raise NotImplementedError

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        if self.std_key is None:  # a fixed, moderate standard deviation
            return None, None
        mean, std = self._moments()
        return normal_reach(self, mean, std, self.std_key, self.mean_key, NORMAL_PEAK)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return normal(rng, shape, dtype, *self._moments())

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return float(self._moments()[1])


class RandomNormal(_Normal):
    name: str = "random_normal"
    PARAMS: tuple[Param, ...] = (
        Param("mean", "number", 0.0, "Mean of the normal distribution."),
        Param("stddev", "number", 0.05, "Standard deviation.", minimum=0.0),
    )
    aliases: tuple[str, ...] = ("random_normal", "RandomNormal", "randomNormal", "normal")
    formula: str = "N(mean, stddev²)"
    description: str = (
        "Normal distribution with fixed mean and standard deviation "
        "(TF.js 4.22 silently replaces stddev 0 with 0.05; initlab honours 0)."
    )
    references: tuple[str, ...] = (KERAS_REF, TFJS_REF)
    # torch's normal_ (std 1 by default) is torch_normal's.
    frameworks: dict[str, str | None] = frameworks("RandomNormal", "randomNormal")
    keras_class: str | None = "RandomNormal"
    tfjs_class: str | None = "RandomNormal"
    mean_key, std_key = "mean", "stddev"

    def _moments(self) -> tuple[float, float]:
        return self.params["mean"], self.params["stddev"]

    def _tfjs_unsupported(self) -> str | None:
        return TFJS_ZERO_STDDEV if self.params["stddev"] == 0 else None

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return keras_rng.normal(seed, shape, *self._moments(), dtype)


class TorchNormal(_Normal):
    name = "torch_normal"
    PARAMS = (
        Param("mean", "number", 0.0, "Mean of the normal distribution."),
        Param("std", "number", 1.0, "Standard deviation.", minimum=0.0),
    )
    aliases = ("torch_normal", "normal_", "torch.nn.init.normal_")
    formula = "N(mean, std²)"
    description = "PyTorch normal_ (defaults mean 0, std 1)."
    references = (TORCH_REF,)
    frameworks = frameworks(pytorch="normal_")
    mean_key, std_key = "mean", "std"

    def _moments(self) -> tuple[float, float]:
        return self.params["mean"], self.params["std"]


class JaxNormal(_Normal):
    name = "jax_normal"
    PARAMS = (Param("stddev", "number", 0.01, "Standard deviation.", minimum=0.0),)
    aliases = ("jax_normal", "jax.nn.initializers.normal")
    formula = "N(0, stddev²)"
    description = "JAX normal(stddev=1e-2)."
    references = (JAX_REF,)
    frameworks = frameworks(jax="normal")
    std_key = "stddev"

    def _moments(self) -> tuple[float, float]:
        return 0.0, self.params["stddev"]


class SmallRandom(_Normal):
    name = "small_random"
    aliases = ("small_random", "small_random_normal")
    formula = "N(0, 0.01²)  (randn · 0.01)"
    description = (
        "Small random weights, the classic `np.random.randn(...) * 0.01`: breaks "
        "symmetry but shrinks activations layer by layer in deep nets."
    )
    references = (DLAI_REF,)
    frameworks = frameworks()

    def _moments(self) -> tuple[float, float]:
        return 0.0, 0.01


class LargeRandom(_Normal):
    name = "large_random"
    aliases = ("large_random", "large_random_normal")
    formula = "N(0, 1) · 10"
    description = (
        "Large random weights (`np.random.randn(...) * 10`): saturates sigmoid/tanh "
        "and explodes the loss — the cautionary example."
    )
    references = (DLAI_REF,)
    frameworks = frameworks()

    def _moments(self) -> tuple[float, float]:
        return 0.0, 10.0


# --- uniform -----------------------------------------------------------------------------------


class _Uniform(Initializer):
    """U[low, high); ``_bounds`` says where the bounds come from."""

    family: str = "uniform"

    def _bounds(self, fans: tuple[int, int]) -> tuple[float, float]:
        raise NotImplementedError

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return uniform(rng, shape, dtype, *self._bounds(fans))

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        low, high = self._bounds((fan_in, fan_out))
        return (high - low) / math.sqrt(12.0)


class _UniformParams(_Uniform):
    """U[params[low_key], params[high_key]) with low < high."""

    low_key: str
    high_key: str

    def _validate(self) -> None:
        low, high = self.params[self.low_key], self.params[self.high_key]
        if not low < high:
            raise InitializerError(
                f"{self._field}.{self.low_key}", low, f"must be < {self.high_key} = {high:g}"
            )

    def _bounds(self, fans: tuple[int, int]) -> tuple[float, float]:
        return self.params[self.low_key], self.params[self.high_key]

    def _check_range(self, dtype: np.dtype, fans: tuple[int, int]) -> None:
        check_within(self, dtype, *self._bounds(fans), open_high=True, key=self.low_key)

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        low, high = self._bounds(fans)
        key = self.high_key if abs(high) >= abs(low) else self.low_key
        size = max(abs(low), abs(high))
        how = f"max(|{self.low_key}|, |{self.high_key}|)"
        return self._param(key, size, how), self._param(key, size, how)


class RandomUniform(_UniformParams):
    name: str = "random_uniform"
    PARAMS: tuple[Param, ...] = (
        Param("minval", "number", -0.05, "Lower bound (inclusive)."),
        Param("maxval", "number", 0.05, "Upper bound (exclusive)."),
    )
    aliases: tuple[str, ...] = ("random_uniform", "RandomUniform", "randomUniform", "uniform")
    formula: str = "U[minval, maxval)"
    description: str = (
        "Uniform distribution on [minval, maxval) "
        "(TF.js 4.22 silently replaces minval 0 with -0.05; initlab honours 0)."
    )
    references: tuple[str, ...] = (KERAS_REF, TFJS_REF)
    # torch's uniform_ (U[0, 1) by default) is torch_uniform's.
    frameworks: dict[str, str | None] = frameworks("RandomUniform", "randomUniform")
    keras_class: str | None = "RandomUniform"
    tfjs_class: str | None = "RandomUniform"
    low_key, high_key = "minval", "maxval"

    def _tfjs_unsupported(self) -> str | None:
        if self.params["minval"] == 0 or self.params["maxval"] == 0:
            return "TF.js 4.22 replaces a bound of 0 with ±0.05 (a || default)"
        return None

    def _check_compat(self, dtype: str) -> None:
        super()._check_compat(dtype)
        low, high = self._bounds((1, 1))
        if not math.isfinite(high - low):
            raise InitializerError(
                f"{self._field}.{self.high_key}",
                high,
                f"compat 'keras' draws NumPy's uniform(low, high), which refuses a range "
                f"{self.high_key} − {self.low_key} beyond float64 (use compat null)",
            )

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return keras_rng.uniform(seed, shape, *self._bounds(fans), dtype)


class TorchUniform(_UniformParams):
    name = "torch_uniform"
    PARAMS = (
        Param("a", "number", 0.0, "Lower bound."),
        Param("b", "number", 1.0, "Upper bound."),
    )
    aliases = ("torch_uniform", "uniform_", "torch.nn.init.uniform_")
    formula = "U[a, b)"
    description = "PyTorch uniform_ (defaults a 0, b 1)."
    references = (TORCH_REF,)
    frameworks = frameworks(pytorch="uniform_")
    low_key, high_key = "a", "b"


class JaxUniform(_Uniform):
    name = "jax_uniform"
    PARAMS = (Param("scale", "number", 0.01, "Upper bound.", minimum=0.0, exclusive_minimum=True),)
    aliases = ("jax_uniform", "jax.nn.initializers.uniform")
    formula = "U[0, scale)  (not symmetric)"
    description = "JAX uniform(scale=1e-2): U[0, scale), all values non-negative."
    references = (JAX_REF,)
    frameworks = frameworks(jax="uniform")

    def _bounds(self, fans: tuple[int, int]) -> tuple[float, float]:
        return 0.0, self.params["scale"]

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        reach = self._param("scale", self.params["scale"], "max(|scale|, |scale|)")
        return reach, reach


class _InverseSqrtFanIn(_Uniform):
    """U(±1/sqrt(fan_in)): the general rule, which is also PyTorch's layer default."""

    formula: str = "U(-1/sqrt(fan_in), 1/sqrt(fan_in))"
    uses_fans: bool = True

    def _bounds(self, fans: tuple[int, int]) -> tuple[float, float]:
        bound = 1.0 / math.sqrt(fans[0]) if fans[0] > 0 else 0.0
        return -bound, bound

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        return None, Reach("fan_in", fans[0], self._bounds(fans)[1], "1/sqrt(fan_in)")

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return 1.0 / math.sqrt(max(fan_in, 1)) / math.sqrt(3.0)


class GeneralRule(_InverseSqrtFanIn):
    name = "general_rule"
    aliases = ("general_rule", "general")
    description = (
        "The 'general rule' y = 1/sqrt(n) with n the number of inputs "
        "(Udacity's weight-initialization lesson); same distribution as torch_default."
    )
    references = ("Udacity deep-learning weight initialization lesson", TORCH_REF)
    frameworks = frameworks()


class TorchDefault(_InverseSqrtFanIn):
    name = "torch_default"
    aliases = ("torch_default", "pytorch_default", "torch.nn.Linear", "torch.nn.Conv2d")
    formula = "U(-1/sqrt(fan_in), 1/sqrt(fan_in))  (= kaiming_uniform_(a=sqrt(5)))"
    description = (
        "What nn.Linear / nn.ConvNd do to their weight (and bias) by default: "
        "kaiming_uniform_(a=sqrt(5)), i.e. U(±1/sqrt(fan_in)). Use layout 'torch' for "
        "PyTorch-shaped weights."
    )
    references = (TORCH_REF, "torch/nn/modules/linear.py reset_parameters")
    frameworks = frameworks(pytorch="kaiming_uniform_(a=math.sqrt(5))")
