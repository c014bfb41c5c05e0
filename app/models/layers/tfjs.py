"""A layer's config as TF.js 4.22 reads it (``{"class_name", "config"}``), or the reason TF.js
cannot run it: each layer type's ``tfjs_unsupported`` and ``tfjs`` hook, applied recursively to
a wrapper's inner layers."""

from __future__ import annotations

from typing import Any

from app.models.errors import ModelUnsupportedError
from app.models.layers.fields import Shape
from app.models.layers.table import LayerType

FALLBACK = "use weights.bin / .safetensors / .npz"


def unsupported(loc: str, value: Any, config: dict[str, Any], why: str) -> ModelUnsupportedError:
    """The refusal of a config TF.js 4.22 cannot run, naming the field and the layer."""
    return ModelUnsupportedError(loc, value, f"{why} (layer {config.get('name')!r}); {FALLBACK}")


def tfjs_layer(
    kind: LayerType, config: dict[str, Any], loc: str, shapes: tuple[Shape, ...]
) -> dict[str, Any]:
    """``config`` (the canonical config, initializers in TF.js form) as TF.js reads it, without
    ``type`` and ``inbound``; ``loc`` names the layer (``layers[2]``, ``layers[2].layer``),
    ``shapes`` are its inputs' (one per inbound output)."""
    if kind.tfjs_unsupported is not None:
        raise unsupported(f"{loc}.type", kind.class_name, config, kind.tfjs_unsupported)
    config.pop("type", None)
    if kind.tfjs is not None:
        kind.tfjs(config, loc, shapes)
    config.pop("inbound", None)
    return {"class_name": kind.class_name, "config": config}
