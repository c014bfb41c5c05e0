"""PyTorch's fan-based schemes: xavier_uniform_ / xavier_normal_ (gain) and kaiming_uniform_ /
kaiming_normal_ (calculate_gain), untruncated — the torch side of variance scaling.

Fans follow the request's layout (``layout: "torch"`` for PyTorch-shaped weights) or explicit
``fan_in`` / ``fan_out``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from app.initializers.base import Initializer, Param, Reach
from app.initializers.gains import NONLINEARITIES, calculate_gain
from app.initializers.sampling import NORMAL_PEAK
from app.initializers.schemes._common import TORCH_REF, frameworks, normal, uniform
from app.initializers.schemes.variance import GLOROT, HE


class _FanScaled(Initializer):
    """PyTorch's fan-based schemes: ``_std(fans)`` as U(±sqrt(3)·std) or N(0, std²)."""

    family: str = "variance_scaling"
    distribution: ClassVar[str] = "uniform"
    uses_fans: bool = True
    references: tuple[str, ...] = (TORCH_REF,)

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
            return normal(rng, shape, dtype, 0.0, std)
        bound = math.sqrt(3.0) * std
        return uniform(rng, shape, dtype, -bound, bound)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return self._std((fan_in, fan_out))


class _Xavier(_FanScaled):
    """std = gain · sqrt(2 / (fan_in + fan_out))."""

    PARAMS: tuple[Param, ...] = (
        Param(
            "gain",
            "number",
            1.0,
            "Scaling factor (see calculate_gain).",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )
    references: tuple[str, ...] = (TORCH_REF, GLOROT)

    def _std(self, fans: tuple[int, int]) -> float:
        return self.params["gain"] * math.sqrt(2.0 / float(max(1, fans[0] + fans[1])))


class XavierUniform(_Xavier):
    name = "xavier_uniform"
    aliases = ("xavier_uniform", "xavier_uniform_", "torch.nn.init.xavier_uniform_")
    formula = "U(-a, a), a = gain · sqrt(6 / (fan_in + fan_out))"
    description = "PyTorch xavier_uniform_. With gain 1 the distribution equals glorot_uniform."
    # Keras's / TF.js's / JAX's glorot_uniform have no gain: they are glorot_uniform's.
    frameworks = frameworks(pytorch="xavier_uniform_")


class XavierNormal(_Xavier):
    name = "xavier_normal"
    family = "normal"
    distribution = "normal"
    aliases = ("xavier_normal", "xavier_normal_", "torch.nn.init.xavier_normal_")
    formula = "N(0, std²), std = gain · sqrt(2 / (fan_in + fan_out))  (untruncated)"
    description = "PyTorch xavier_normal_: untruncated (Keras's glorot_normal is truncated)."
    frameworks = frameworks(pytorch="xavier_normal_")


class _Kaiming(_FanScaled):
    """std = calculate_gain(nonlinearity, a) / sqrt(fan(mode))."""

    PARAMS: tuple[Param, ...] = (
        Param(
            "a",
            "number",
            0.0,
            "Negative slope of the rectifier after this layer (leaky_relu only).",
        ),
        Param(
            "mode",
            "string",
            "fan_in",
            "fan_in preserves the forward variance, fan_out the backward one.",
            choices=("fan_in", "fan_out"),
        ),
        Param(
            "nonlinearity",
            "string",
            "leaky_relu",
            "Non-linear function after this layer (calculate_gain).",
            choices=NONLINEARITIES,
        ),
    )
    references: tuple[str, ...] = (TORCH_REF, HE)

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


class KaimingUniform(_Kaiming):
    name = "kaiming_uniform"
    aliases = ("kaiming_uniform", "kaiming_uniform_", "torch.nn.init.kaiming_uniform_")
    formula = (
        "U(-bound, bound), bound = gain · sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)"
    )
    description = "PyTorch kaiming_uniform_ (He et al. 2015)."
    frameworks = frameworks(pytorch="kaiming_uniform_")


class KaimingNormal(_Kaiming):
    name = "kaiming_normal"
    family = "normal"
    distribution = "normal"
    aliases = ("kaiming_normal", "kaiming_normal_", "torch.nn.init.kaiming_normal_")
    formula = "N(0, std²), std = gain / sqrt(fan)  (untruncated)"
    description = "PyTorch kaiming_normal_: untruncated (Keras's he_normal is truncated)."
    frameworks = frameworks(pytorch="kaiming_normal_")
