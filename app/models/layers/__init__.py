"""The layer table: per layer type, its config fields, output shape and weights.

Shapes exclude the batch axis. Kernels use the Keras layout ``(..., in, out)``; weights are
listed in the order Keras 3 and TF.js 4.22 hold them (trainable first, then non-trainable).
Pure Python: no NumPy, nothing allocated. Each module of this package contributes ``LAYERS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.models.errors import ModelSpecError
from app.models.layers import (
    activations,
    conv,
    core,
    merge,
    pooling,
    recurrent,
    reshaping,
    wrappers,
)
from app.models.layers.fields import ACTIVATIONS, Fields, Inferred, Shape, WeightShape
from app.models.layers.table import LayerType

LAYER_TYPES: dict[str, LayerType] = {
    t.type: t
    for module in (core, conv, recurrent, merge, pooling, reshaping, activations, wrappers)
    for t in module.LAYERS
}
# Keras class names are accepted as types too ("Dense", "SimpleRNN").
_BY_CLASS = {t.class_name: t for t in LAYER_TYPES.values()}

__all__ = [
    "ACTIVATIONS",
    "LAYER_TYPES",
    "Fields",
    "Inferred",
    "LayerType",
    "Shape",
    "WeightShape",
    "infer",
    "initializer_field",
    "layer_type",
]


def layer_type(value: object, loc: str) -> LayerType:
    found = _BY_CLASS.get(value) if isinstance(value, str) else None
    if isinstance(value, str) and found is None:
        found = LAYER_TYPES.get(value.lower())
    if found is None:
        raise ModelSpecError(
            f"{loc}.type", value, f"unknown layer type; supported: {', '.join(LAYER_TYPES)}"
        )
    return found


def initializer_field(role: str) -> str:
    """The config field of a weight role: ``kernel_initializer``, ``recurrent_initializer``."""
    return f"{role}_initializer"


def infer(
    kind: LayerType,
    raw: Mapping[str, Any],
    shapes: tuple[Shape, ...],
    loc: str,
    defaults: str,
) -> Inferred:
    """Check ``raw``'s fields against ``kind`` and infer its output shape and weights from
    its inputs' shapes (one, except for merge layers)."""
    allowed = {"type", "name", *kind.fields, *(initializer_field(r) for r in kind.roles)}
    for key in raw:
        if key not in allowed:
            raise ModelSpecError(
                f"{loc}.{key}", raw[key], f"not a field of {kind.type}; fields: {sorted(allowed)}"
            )
    f = Fields(raw, loc)
    if kind.infer_many is not None:
        if len(shapes) < kind.min_inputs:
            raise ModelSpecError(
                f"{loc}.type",
                kind.class_name,
                f"needs at least {kind.min_inputs} inputs; got {len(shapes)}",
            )
        return kind.infer_many(f, shapes, defaults)
    assert kind.infer is not None
    if len(shapes) != 1:
        raise ModelSpecError(
            f"{loc}.type", kind.class_name, f"takes exactly one input; got {len(shapes)}"
        )
    return kind.infer(f, shapes[0], defaults)
