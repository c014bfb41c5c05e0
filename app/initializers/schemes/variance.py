"""Variance scaling: Keras's VarianceScaling and its Glorot / He / LeCun presets (one explicit
class each), PyTorch's xavier_* and kaiming_* (untruncated, with a gain).

Kernel layout: ``(*spatial, in, out)`` (Keras). Fans come from the layout, from explicit
``fan_in`` / ``fan_out``, from Keras 3's ``input_axes`` / ``output_axes``, or from JAX's
``in_axis`` / ``out_axis`` / ``batch_axis`` (``jax.nn.initializers._compute_fans``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from app.initializers import keras_rng
from app.initializers.base import Initializer, Param, Reach
from app.initializers.errors import InitializerError
from app.initializers.fans import (
    JAX_AXES,
    axis_list,
    compute_fans,
    jax_axes_fans,
    keras_axes_fans,
    tfjs_fans,
)
from app.initializers.sampling import NORMAL_PEAK
from app.initializers.schemes._common import (
    JAX_REF,
    KERAS_REF,
    TFJS_REF,
    TRUNCATED_STD,
    frameworks,
    normal,
    truncated,
    uniform,
    uniform_limit,
)

GLOROT = (
    "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward "
    "neural networks (AISTATS)"
)
HE = "He et al. 2015, Delving Deep into Rectifiers (arXiv:1502.01852)"
LECUN = "LeCun et al. 1998, Efficient BackProp; Klambauer et al. 2017 (arXiv:1706.02515)"

MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")

AXES_PARAMS: tuple[Param, ...] = (
    Param(
        "input_axes",
        "array",
        None,
        "Axes whose product is fan_in (Keras 3 input_axes); needs output_axes too.",
        nullable=True,
    ),
    Param(
        "output_axes",
        "array",
        None,
        "Axes whose product is fan_out (Keras 3 output_axes).",
        nullable=True,
    ),
    Param(
        "in_axis",
        "array",
        None,
        "JAX in_axis: the input axis or axes (default -2 when any JAX axis is given); the axes "
        "outside in_axis, out_axis and batch_axis are the receptive field.",
        nullable=True,
    ),
    Param("out_axis", "array", None, "JAX out_axis (default -1).", nullable=True),
    Param(
        "batch_axis",
        "array",
        None,
        "JAX batch_axis: axes left out of both fans (default none).",
        nullable=True,
    ),
)


class _VarianceScaled(Initializer):
    """var = scale / max(1, fan(mode)); drawn as a corrected truncated normal, an untruncated
    normal or a uniform. ``_settings()`` gives (scale, mode, distribution)."""

    family: str = "variance_scaling"
    uses_fans: bool = True
    tfjs_class: str | None = "VarianceScaling"
    FOREIGN_PARAMS: ClassVar[frozenset[str]] = frozenset(JAX_AXES)

    def _settings(self) -> tuple[float, str, str]:
        raise NotImplementedError

    def _scale_driver(self, fans: tuple[int, int]) -> tuple[str, Any]:
        """The request field that sets the values' size (presets: an explicit fan)."""
        field = "fan_out" if self._settings()[1] == "fan_out" else "fan_in"
        return field, fans[1] if field == "fan_out" else fans[0]

    def _validate(self) -> None:
        p = self.params
        if (p["input_axes"] is None) != (p["output_axes"] is None):
            missing = "output_axes" if p["output_axes"] is None else "input_axes"
            raise InitializerError(
                f"{self._field}.{missing}",
                None,
                "input_axes and output_axes must be given together",
            )
        jax_given = [key for key in JAX_AXES if p[key] is not None]
        if jax_given and p["input_axes"] is not None:
            raise InitializerError(
                f"{self._field}.{jax_given[0]}",
                p[jax_given[0]],
                "give Keras's input_axes/output_axes or JAX's in_axis/out_axis/batch_axis, "
                "not both",
            )

    def _jax_axes(self) -> dict[str, Any] | None:
        axes = {key: self.params[key] for key in JAX_AXES}
        return axes if any(v is not None for v in axes.values()) else None

    def fans_for(
        self, shape: Sequence[int], layout: str, fan_in: int | None, fan_out: int | None
    ) -> tuple[int, int]:
        input_axes, output_axes = self.params["input_axes"], self.params["output_axes"]
        jax_axes = self._jax_axes()
        if jax_axes is not None:
            computed = jax_axes_fans(shape, jax_axes, self._field)
        elif input_axes is not None and output_axes is not None:
            computed = keras_axes_fans(
                shape, axis_list(input_axes), axis_list(output_axes), self._field
            )
        else:
            return compute_fans(shape, layout, fan_in, fan_out)
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
        if self._jax_axes() is not None:
            raise InitializerError(
                "compat", "keras", "Keras 3 has no in_axis/out_axis/batch_axis (they are JAX's)"
            )

    def _tfjs_unsupported(self) -> str | None:
        _, mode, distribution = self._settings()
        if mode == "fan_geo_avg":
            return "TF.js 4.22 has no fan_geo_avg mode"
        if distribution == "untruncated_normal":
            return "TF.js 4.22 has no untruncated normal in VarianceScaling"
        if self.params["input_axes"] is not None or self._jax_axes() is not None:
            return "TF.js 4.22 VarianceScaling cannot choose the fan axes"
        if distribution == "truncated_normal":
            return (
                "TF.js 4.22 draws VarianceScaling 'normal' without the 0.8796 correction "
                "(std 0.88× this scheme's); load the served values instead"
            )
        return None

    def _tfjs_shape_unsupported(self, shape: tuple[int, ...], fans: tuple[int, int]) -> str | None:
        theirs = tfjs_fans(shape)
        std, their_std = math.sqrt(self._variance(fans)), math.sqrt(self._variance(theirs))
        if math.isclose(std, their_std, rel_tol=1e-12):
            return None
        rule = (
            "from the channels-last layout alone (it has no fan_in, fan_out or layout)"
            if 2 <= len(shape) <= 5
            else "as sqrt(prod(shape)) at rank 0, 1 and above 5"
        )
        return (
            f"TF.js 4.22 counts the fans of shape {list(shape)} {rule}, giving "
            f"({theirs[0]:.6g}, {theirs[1]:.6g}), not this request's ({fans[0]}, {fans[1]}): "
            f"it would draw std {their_std:.4g}, not {std:.4g}; load the served values instead"
        )

    def _variance(self, fans: tuple[float, float]) -> float:
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
            std, peak_z = uniform_limit(var), 1.0
        how = "sqrt(scale / n)"
        field, value = self._scale_driver(fans)
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
            return truncated(rng, shape, dtype, 0.0, math.sqrt(var) / TRUNCATED_STD, -2.0, 2.0)
        if distribution == "untruncated_normal":
            return normal(rng, shape, dtype, 0.0, math.sqrt(var))
        limit = uniform_limit(var)
        return uniform(rng, shape, dtype, -limit, limit)

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        var = self._variance(fans)
        distribution = self._settings()[2]
        if distribution == "truncated_normal":
            return keras_rng.truncated_normal(
                seed, shape, 0.0, math.sqrt(var) / TRUNCATED_STD, dtype
            )
        if distribution == "untruncated_normal":
            return keras_rng.normal(seed, shape, 0.0, math.sqrt(var), dtype)
        limit = uniform_limit(var)
        return keras_rng.uniform(seed, shape, -limit, limit, dtype)

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        return math.sqrt(self._variance((fan_in, fan_out)))

    def _tfjs_params(self) -> tuple[str, dict[str, Any]]:
        scale, mode, distribution = self._settings()
        # TF.js spells the Keras truncated normal "normal" ("truncatedNormal" draws uniform).
        tfjs_distribution = "normal" if distribution == "truncated_normal" else distribution
        return "VarianceScaling", {"scale": scale, "mode": mode, "distribution": tfjs_distribution}


class VarianceScaling(_VarianceScaled):
    name: str = "variance_scaling"
    PARAMS: tuple[Param, ...] = (
        Param("scale", "number", 1.0, "Scaling factor (> 0).", minimum=0.0, exclusive_minimum=True),
        Param(
            "mode",
            "string",
            "fan_in",
            "Which fan n counts: fan_in, fan_out, their "
            "arithmetic mean (fan_avg) or geometric mean (fan_geo_avg, JAX).",
            choices=MODES,
        ),
        Param(
            "distribution",
            "string",
            "truncated_normal",
            'truncated_normal ("normal" is the same, as in Keras), untruncated_normal or uniform.',
            choices=DISTRIBUTIONS,
        ),
        *AXES_PARAMS,
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
    frameworks: dict[str, str | None] = frameworks(
        "VarianceScaling", "varianceScaling", None, "variance_scaling"
    )
    keras_class: str | None = "VarianceScaling"

    def _validate(self) -> None:
        if self.params["distribution"] == "normal":
            self.params["distribution"] = "truncated_normal"
        super()._validate()

    def _settings(self) -> tuple[float, str, str]:
        p = self.params
        return p["scale"], p["mode"], p["distribution"]

    def _scale_driver(self, fans: tuple[int, int]) -> tuple[str, Any]:
        return f"{self._field}.scale", self.params["scale"]


class _Preset(_VarianceScaled):
    """VarianceScaling with a fixed (SCALE, MODE, DISTRIBUTION): Glorot, He, LeCun."""

    PARAMS: tuple[Param, ...] = AXES_PARAMS
    SCALE: ClassVar[float]
    MODE: ClassVar[str]
    DISTRIBUTION: ClassVar[str]

    def _settings(self) -> tuple[float, str, str]:
        return self.SCALE, self.MODE, self.DISTRIBUTION


def _jax(*names: str) -> tuple[str, ...]:
    return tuple(f"jax.nn.initializers.{n}" for n in names)


class GlorotUniform(_Preset):
    name = "glorot_uniform"
    SCALE, MODE, DISTRIBUTION = 1.0, "fan_avg", "uniform"
    aliases = (
        "glorot_uniform", "GlorotUniform", "glorotUniform", "GlorotUniform",
        *_jax("glorot_uniform", "xavier_uniform"),
    )  # fmt: skip
    formula = "U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))"
    description = (
        "Glorot / Xavier uniform: keeps activation and gradient variance across layers for "
        "tanh-like units. Keras's default kernel initializer."
    )
    references = (KERAS_REF, JAX_REF, GLOROT)
    frameworks = frameworks("GlorotUniform", "glorotUniform", None, "glorot_uniform")
    keras_class = "GlorotUniform"


class GlorotNormal(_Preset):
    name = "glorot_normal"
    SCALE, MODE, DISTRIBUTION = 1.0, "fan_avg", "truncated_normal"
    aliases = (
        "glorot_normal", "GlorotNormal", "glorotNormal", "GlorotNormal",
        *_jax("glorot_normal", "xavier_normal"),
    )  # fmt: skip
    formula = (
        "truncated N(0, σ²) cut at ±2σ, σ = sqrt(2 / (fan_in + fan_out)) / 0.8796 (final std "
        "sqrt(2 / (fan_in + fan_out)))"
    )
    description = (
        "Glorot / Xavier normal (truncated, variance-corrected). TF.js 4.22's glorotNormal is "
        "uncorrected (std 0.88× too small); initlab gives the Keras values."
    )
    references = (KERAS_REF, JAX_REF, GLOROT)
    frameworks = frameworks("GlorotNormal", "glorotNormal", None, "glorot_normal")
    keras_class = "GlorotNormal"


class HeUniform(_Preset):
    name = "he_uniform"
    SCALE, MODE, DISTRIBUTION = 2.0, "fan_in", "uniform"
    aliases = (
        "he_uniform", "HeUniform", "heUniform", "HeUniform",
        *_jax("he_uniform", "kaiming_uniform"),
    )  # fmt: skip
    formula = "U(-limit, limit), limit = sqrt(6 / fan_in)"
    description = "He / Kaiming uniform for ReLU networks."
    references = (KERAS_REF, JAX_REF, HE)
    frameworks = frameworks("HeUniform", "heUniform", None, "he_uniform")
    keras_class = "HeUniform"


class HeNormal(_Preset):
    name = "he_normal"
    SCALE, MODE, DISTRIBUTION = 2.0, "fan_in", "truncated_normal"
    aliases = (
        "he_normal", "HeNormal", "heNormal", "HeNormal",
        *_jax("he_normal", "kaiming_normal"),
    )  # fmt: skip
    formula = (
        "truncated N(0, σ²) cut at ±2σ, σ = sqrt(2 / fan_in) / 0.8796 (final std sqrt(2 / fan_in))"
    )
    description = "He / Kaiming normal for ReLU networks (truncated, variance-corrected)."
    references = (KERAS_REF, JAX_REF, HE)
    frameworks = frameworks("HeNormal", "heNormal", None, "he_normal")
    keras_class = "HeNormal"


class LecunUniform(_Preset):
    name = "lecun_uniform"
    SCALE, MODE, DISTRIBUTION = 1.0, "fan_in", "uniform"
    aliases = (
        "lecun_uniform", "LecunUniform", "leCunUniform", "LeCunUniform",
        *_jax("lecun_uniform"),
    )  # fmt: skip
    formula = "U(-limit, limit), limit = sqrt(3 / fan_in)"
    description = "LeCun uniform (SELU networks). TF.js spells it leCunUniform / LeCunUniform."
    references = (KERAS_REF, JAX_REF, LECUN)
    frameworks = frameworks("LecunUniform", "leCunUniform", None, "lecun_uniform")
    keras_class = "LecunUniform"


class LecunNormal(_Preset):
    name = "lecun_normal"
    SCALE, MODE, DISTRIBUTION = 1.0, "fan_in", "truncated_normal"
    aliases = (
        "lecun_normal", "LecunNormal", "leCunNormal", "LeCunNormal",
        *_jax("lecun_normal"),
    )  # fmt: skip
    formula = (
        "truncated N(0, σ²) cut at ±2σ, σ = sqrt(1 / fan_in) / 0.8796 (final std sqrt(1 / fan_in))"
    )
    description = (
        "LeCun normal (SELU networks; truncated, variance-corrected). TF.js spells it "
        "leCunNormal / LeCunNormal."
    )
    references = (KERAS_REF, JAX_REF, LECUN)
    frameworks = frameworks("LecunNormal", "leCunNormal", None, "lecun_normal")
    keras_class = "LecunNormal"
