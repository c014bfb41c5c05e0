"""Truncated normals: Keras's TruncatedNormal (cut at mean ± 2·stddev), JAX's truncated_normal
(bounds in units of σ) and PyTorch's trunc_normal_ (absolute bounds).

Kernel layout: ``(*spatial, in, out)`` (Keras); none of them reads the fans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from app.initializers import keras_rng, sampling
from app.initializers.base import Initializer, Param, Reach
from app.initializers.errors import InitializerError
from app.initializers.sampling import NORMAL_PEAK
from app.initializers.schemes._common import (
    JAX_REF,
    KERAS_REF,
    TFJS_REF,
    TFJS_ZERO_STDDEV,
    TORCH_REF,
    TRUNCATED_STD,
    check_within,
    frameworks,
    normal_reach,
    truncated,
    truncated_std,
)


class TruncatedNormal(Initializer):
    name = "truncated_normal"
    family = "truncated_normal"
    PARAMS = (
        Param("mean", "number", 0.0, "Mean of the normal before truncation."),
        Param("stddev", "number", 0.05, "Standard deviation before truncation (σ).", minimum=0.0),
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
    frameworks = frameworks("TruncatedNormal", "truncatedNormal")
    keras_class = "TruncatedNormal"
    tfjs_class = "TruncatedNormal"

    def _tfjs_unsupported(self) -> str | None:
        return TFJS_ZERO_STDDEV if self.params["stddev"] == 0 else None

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        p = self.params
        return normal_reach(self, p["mean"], p["stddev"], "stddev", "mean", 2.0)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        return truncated(rng, shape, dtype, self.params["mean"], self.params["stddev"], -2.0, 2.0)

    def _check_range(self, dtype: np.dtype, fans: tuple[int, int]) -> None:
        mean, stddev = self.params["mean"], self.params["stddev"]
        if stddev > 0.0:  # else a constant: the mean, rounded
            low, high = mean - 2.0 * stddev, mean + 2.0 * stddev
            check_within(self, dtype, low, high, open_high=False, key="stddev")

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        return keras_rng.truncated_normal(
            seed, shape, self.params["mean"], self.params["stddev"], dtype
        )

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return self.params["stddev"] * TRUNCATED_STD


class _TruncatedBetween(Initializer):
    """mean + std·Z, Z ~ N(0, 1) restricted to the standard bounds ``_standard_bounds()``."""

    family: str = "truncated_normal"
    mean_key: str | None = None
    std_key: str
    bound_key: str  # the parameter named when the bounds hold no float16/bfloat16 number

    def _moments(self) -> tuple[float, float]:
        mean = self.params[self.mean_key] if self.mean_key else 0.0
        return mean, self.params[self.std_key]

    def _standard_bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    def _value_bounds(self) -> tuple[float, float]:
        """[low, high] of the values: mean + std·(the standard bounds)."""
        mean, std = self._moments()
        lo, hi = self._standard_bounds()
        return mean + lo * std, mean + hi * std

    def _check_range(self, dtype: np.dtype, fans: tuple[int, int]) -> None:
        if self._moments()[1] > 0.0:  # else a constant: the mean, rounded
            low, high = self._value_bounds()
            check_within(self, dtype, low, high, open_high=False, key=self.bound_key)

    def _check_mass(self, key: str, bounds: str, of: str) -> None:
        if sampling.normal_acceptance(*self._standard_bounds()) < 1e-3:
            raise InitializerError(
                f"{self._field}.{key}", self.params[key], f"{bounds} holds under 0.1% of {of}"
            )

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        moments, bounds = self._moments(), self._standard_bounds()
        return truncated(rng, shape, dtype, *moments, *bounds, self._value_bounds())

    def work(self, shape: Sequence[int]) -> int:
        return math.ceil(math.prod(shape) / sampling.normal_acceptance(*self._standard_bounds()))

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return self._moments()[1] * truncated_std(*self._standard_bounds())


class JaxTruncatedNormal(_TruncatedBetween):
    name = "jax_truncated_normal"
    PARAMS = (
        Param("stddev", "number", 0.01, "Standard deviation before truncation (σ).", minimum=0.0),
        Param("lower", "number", -2.0, "Lower bound in units of σ."),
        Param("upper", "number", 2.0, "Upper bound in units of σ."),
    )
    aliases = ("jax_truncated_normal", "jax.nn.initializers.truncated_normal")
    formula = "stddev · Z, Z ~ N(0, 1) restricted to [lower, upper]"
    description = (
        "JAX truncated_normal(stddev=1e-2, lower=-2, upper=2): bounds in units of σ, "
        "no variance correction."
    )
    references = (JAX_REF,)
    frameworks = frameworks(jax="truncated_normal")
    std_key, bound_key = "stddev", "lower"

    def _standard_bounds(self) -> tuple[float, float]:
        return self.params["lower"], self.params["upper"]

    def _validate(self) -> None:
        lower, upper = self._standard_bounds()
        if not lower < upper:
            raise InitializerError(f"{self._field}.lower", lower, f"must be < upper = {upper:g}")
        self._check_mass("lower", f"[lower, upper] = [{lower:g}, {upper:g}]", "the normal's mass")

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        p = self.params
        peak_z = min(max(abs(p["lower"]), abs(p["upper"])), NORMAL_PEAK)
        return normal_reach(self, 0.0, p["stddev"], "stddev", None, peak_z)


class TruncNormal(_TruncatedBetween):
    name = "trunc_normal"
    PARAMS = (
        Param("mean", "number", 0.0, "Mean of the normal before truncation."),
        Param(
            "std",
            "number",
            1.0,
            "Standard deviation before truncation.",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        Param("a", "number", -2.0, "Lower cut-off (absolute value, not in units of std)."),
        Param("b", "number", 2.0, "Upper cut-off (absolute value)."),
    )
    aliases = ("trunc_normal", "trunc_normal_", "torch.nn.init.trunc_normal_")
    formula = "N(mean, std²) restricted to [a, b]  (a, b absolute)"
    description = (
        "PyTorch trunc_normal_: a and b are absolute bounds, not multiples of std "
        "(with std 0.02 the default [-2, 2] cuts nothing)."
    )
    references = (TORCH_REF,)
    frameworks = frameworks(pytorch="trunc_normal_")
    mean_key, std_key, bound_key = "mean", "std", "a"

    def _standard_bounds(self) -> tuple[float, float]:
        p = self.params
        return (p["a"] - p["mean"]) / p["std"], (p["b"] - p["mean"]) / p["std"]

    def _value_bounds(self) -> tuple[float, float]:
        return self.params["a"], self.params["b"]

    def _validate(self) -> None:
        a, b = self.params["a"], self.params["b"]
        if not a < b:
            raise InitializerError(f"{self._field}.a", a, f"must be < b = {b:g}")
        self._check_mass(
            "a",
            f"[a, b] = [{a:g}, {b:g}]",
            "N(mean, std²)'s mass; move it towards the mean or widen it",
        )

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        p = self.params
        peak, typical = normal_reach(self, p["mean"], p["std"], "std", "mean", NORMAL_PEAK)
        cut = max(abs(p["a"]), abs(p["b"]))  # values lie in [a, b]
        if cut < peak.size:
            peak = self._param("a" if abs(p["a"]) >= abs(p["b"]) else "b", cut, "max(|a|, |b|)")
        return peak, typical
