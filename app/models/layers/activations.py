"""The activation layers: ReLU, LeakyReLU, ELU, Softmax (no weights) and PReLU (``alpha``:
the input's shape with each of ``shared_axes`` set to 1)."""

from __future__ import annotations

from typing import Any

from app.models.layers.fields import Fields, Inferred, Shape, WeightShape
from app.models.layers.table import LayerType
from app.models.layers.tfjs import unsupported

_BIG = float("inf")


def _relu(f: Fields, shape: Shape, _: str) -> Inferred:
    f.optional_number("max_value", low=0.0, high=_BIG)
    f.number("negative_slope", 0.0, low=0.0, high=_BIG)
    f.number("threshold", 0.0, low=0.0, high=_BIG)
    return Inferred(f.out, shape, ())


def _leaky_relu(f: Fields, shape: Shape, _: str) -> Inferred:
    """``negative_slope`` (Keras 3), also read as ``alpha``, its name in Keras 2, TF.js and
    model.json (Keras 3 takes that too); the canonical spec says ``negative_slope``."""
    key = "alpha" if "alpha" in f.raw else "negative_slope"
    if key == "alpha" and "negative_slope" in f.raw:
        raise f.fail("alpha", "is negative_slope's other name: give one of them")
    f.out["negative_slope"] = f.number(key, 0.3, low=0.0, high=_BIG)
    f.out.pop("alpha", None)
    return Inferred(f.out, shape, ())


def _elu(f: Fields, shape: Shape, _: str) -> Inferred:
    f.number("alpha", 1.0, low=-_BIG, high=_BIG)
    return Inferred(f.out, shape, ())


def _softmax(f: Fields, shape: Shape, _: str) -> Inferred:
    f.axis_index(shape)
    return Inferred(f.out, shape, ())


def _prelu(f: Fields, shape: Shape, _: str) -> Inferred:
    shared = f.int_list("shared_axes", minimum=1, allow_none=True) or []
    if any(a > len(shape) for a in shared):
        raise f.fail("shared_axes", f"counts the batch axis: must be in 1..{len(shape)}")
    alpha = []
    for axis in range(1, len(shape) + 1):
        alpha.append(1 if axis in shared else f.known(shape, axis - 1, f"axis {axis}"))
    return Inferred(f.out, shape, (WeightShape("alpha", tuple(alpha), "alpha"),))


def _tfjs_relu(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
    for key in ("negative_slope", "threshold"):
        if config[key] != 0.0:
            raise unsupported(
                f"{loc}.{key}", config[key], config, "TF.js 4.22 ReLU has max_value only"
            )
        del config[key]


def _tfjs_leaky_relu(config: dict[str, Any], _: str, _shapes: tuple[Shape, ...]) -> None:
    config["alpha"] = config.pop("negative_slope")  # Keras 2 and TF.js name it alpha


def _tfjs_elu(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
    if config["alpha"] != 1.0:
        raise unsupported(
            f"{loc}.alpha", config["alpha"], config, "TF.js 4.22 ELU runs alpha 1.0 only"
        )


LAYERS: tuple[LayerType, ...] = (
    LayerType(
        "re_lu", "ReLU", _relu, ("max_value", "negative_slope", "threshold"), tfjs=_tfjs_relu
    ),
    LayerType(
        "leaky_re_lu",
        "LeakyReLU",
        _leaky_relu,
        ("negative_slope", "alpha"),
        tfjs=_tfjs_leaky_relu,
    ),
    LayerType("elu", "ELU", _elu, ("alpha",), tfjs=_tfjs_elu),
    LayerType("softmax", "Softmax", _softmax, ("axis",)),
    LayerType("p_re_lu", "PReLU", _prelu, ("shared_axes",), ("alpha",)),
)
