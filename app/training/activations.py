"""Element-wise activations with in-place forward and backward passes.

Every activation writes into caller-owned buffers so the trainer allocates nothing per batch:

    forward(z, out)            out = f(z)
    backward(z, a, da, out)    out = da * f'(z)       (a = f(z) from the forward pass)

``out`` may alias ``da`` in ``backward`` (the trainer does that to reuse one buffer); it never
aliases ``z`` or ``a``. Arrays are ``(batch, units)``; any float dtype works (float32 for
training, float64 for the finite-difference checks).

GELU uses the tanh approximation (Hendrycks & Gimpel 2016, eq. in §2; torch
``nn.GELU(approximate="tanh")``, Keras ``gelu(approximate=True)``): NumPy has no ``erf``
ufunc, and the torch parity tests use the same approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ACTIVATIONS", "ACTIVATION_PARAMS", "Activation", "canonical_activation", "sigmoid"]

# SELU constants from Klambauer et al. 2017 (the fixed point for zero mean / unit variance).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_GELU_C = math.sqrt(2.0 / math.pi)  # sqrt(2/pi)
_GELU_K = 0.044715


@dataclass(frozen=True)
class Activation:
    """One activation function: ``name``, its parameters, forward and backward kernels."""

    name: str
    negative_slope: float = 0.01  # leaky_relu (torch default)
    alpha: float = 1.0  # elu

    # Bounds of the output for saturation diagnostics (sigmoid, tanh), else None.
    @property
    def bounds(self) -> tuple[float, float] | None:
        if self.name == "sigmoid":
            return (0.0, 1.0)
        if self.name == "tanh":
            return (-1.0, 1.0)
        return None

    @property
    def rectifier(self) -> bool:
        """True for ReLU-like units, where "dead" (pre-activation <= 0 everywhere) makes sense."""
        return self.name in ("relu", "leaky_relu", "elu", "selu", "gelu")

    def config(self) -> dict[str, Any]:
        if self.name == "leaky_relu":
            return {"name": self.name, "negative_slope": self.negative_slope}
        if self.name == "elu":
            return {"name": self.name, "alpha": self.alpha}
        return {"name": self.name}

    def forward(self, z: np.ndarray, out: np.ndarray) -> np.ndarray:
        name = self.name
        if name == "relu":
            np.maximum(z, 0, out=out)
        elif name == "linear":
            np.copyto(out, z)
        elif name == "leaky_relu":
            # max(z, 0) + slope * min(z, 0)
            np.minimum(z, 0, out=out)
            out *= self.negative_slope
            out += np.maximum(z, 0)
        elif name == "elu":
            # z if z > 0 else alpha * (exp(z) - 1)
            np.minimum(z, 0, out=out)
            np.expm1(out, out=out)
            out *= self.alpha
            np.copyto(out, z, where=z > 0)
        elif name == "selu":
            # scale * (z if z > 0 else alpha * (exp(z) - 1))
            np.minimum(z, 0, out=out)
            np.expm1(out, out=out)
            out *= SELU_ALPHA
            np.copyto(out, z, where=z > 0)
            out *= SELU_SCALE
        elif name == "gelu":
            # 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
            np.multiply(z, z, out=out)
            out *= _GELU_K
            out += 1.0
            out *= z
            out *= _GELU_C
            np.tanh(out, out=out)
            out += 1.0
            out *= z
            out *= 0.5
        elif name == "tanh":
            np.tanh(z, out=out)
        elif name == "sigmoid":
            sigmoid(z, out)
        else:  # pragma: no cover - names are validated by make_activation
            raise ValueError(f"unknown activation {name!r}")
        return out

    def backward(self, z: np.ndarray, a: np.ndarray, da: np.ndarray, out: np.ndarray) -> np.ndarray:
        name = self.name
        if name == "relu":
            # f'(z) = 1 where z > 0; written without a temporary: out = da * (z > 0)
            np.multiply(da, np.greater(z, 0), out=out)
        elif name == "linear":
            if out is not da:
                np.copyto(out, da)
        elif name == "leaky_relu":
            slope = np.where(z > 0, 1.0, self.negative_slope).astype(z.dtype, copy=False)
            np.multiply(da, slope, out=out)
        elif name == "elu":
            # f'(z) = 1 (z > 0) else alpha * exp(z) = a + alpha
            d = a + self.alpha
            np.copyto(d, 1.0, where=z > 0)
            np.multiply(da, d, out=out)
        elif name == "selu":
            # f'(z) = scale (z > 0) else scale * alpha * exp(z) = a + scale * alpha
            d = a + SELU_SCALE * SELU_ALPHA
            np.copyto(d, SELU_SCALE, where=z > 0)
            np.multiply(da, d, out=out)
        elif name == "gelu":
            # u = c (z + k z^3); f = 0.5 z (1 + tanh u)
            # f' = 0.5 (1 + tanh u) + 0.5 z (1 - tanh^2 u) c (1 + 3 k z^2)
            z2 = z * z
            t = np.tanh(_GELU_C * z * (1.0 + _GELU_K * z2))
            d = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_K * z2)
            np.multiply(da, d.astype(z.dtype, copy=False), out=out)
        elif name == "tanh":
            # f' = 1 - a^2
            d = a * a
            np.subtract(1.0, d, out=d)
            np.multiply(da, d, out=out)
        elif name == "sigmoid":
            # f' = a (1 - a)
            d = 1.0 - a
            d *= a
            np.multiply(da, d, out=out)
        else:  # pragma: no cover
            raise ValueError(f"unknown activation {name!r}")
        return out


def sigmoid(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, overflow-free: ``0.5 * (1 + tanh(z / 2))``."""
    np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


ACTIVATIONS: tuple[str, ...] = (
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "tanh",
    "sigmoid",
    "linear",
)

# Other accepted spellings of the names above (matched after lower-casing, "-" → "_").
_ALIASES = {"identity": "linear", "leakyrelu": "leaky_relu"}

# The parameters each activation takes (``{name, <param>: value}``), with their lower bounds:
# (parameter, minimum, minimum excluded).
ACTIVATION_PARAMS: dict[str, tuple[tuple[str, float, bool], ...]] = {
    "leaky_relu": (("negative_slope", 0.0, False),),
    "elu": (("alpha", 0.0, True),),
}


def canonical_activation(name: str) -> str | None:
    """The canonical name of an activation spelling (``"Leaky-ReLU"`` → ``"leaky_relu"``), or
    None when it names none of :data:`ACTIVATIONS`."""
    canon = name.strip().lower().replace("-", "_")
    canon = _ALIASES.get(canon, canon)
    return canon if canon in ACTIVATIONS else None
