"""One layer type of the table: its type key, Keras class, fields, weight roles and inference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.models.layers.fields import Fields, Inferred, Shape

# One input's shape → the layer's output (most layers).
InferOne = Callable[[Fields, Shape, str], Inferred]
# Every input's shape → the output (merge layers: Add, Concatenate, ...).
InferMany = Callable[[Fields, tuple[Shape, ...], str], Inferred]
# The layer's canonical config (a copy, initializers already in TF.js form; a graph layer's
# ``inbound`` too), ``loc`` and its inputs' shapes (batch excluded) → TF.js 4.22's reading of
# it, changed in place (LeakyReLU ``negative_slope`` → ``alpha``); raises
# ModelUnsupportedError naming ``<loc>.<field>`` for a config TF.js cannot run.
TfjsHook = Callable[[dict[str, Any], str, tuple[Shape, ...]], None]


@dataclass(frozen=True)
class LayerType:
    """One supported layer: its type key (the Keras name stem), Keras class and fields.

    ``infer`` takes the single input's shape; a merge layer sets ``infer_many`` instead (and
    ``infer`` to ``None``), which takes every input's shape, ``min_inputs`` of them at least.
    """

    type: str
    class_name: str
    infer: InferOne | None
    # Config fields besides type and name (the *_initializer fields come from the weights).
    fields: tuple[str, ...]
    roles: tuple[str, ...] = ()
    infer_many: InferMany | None = None
    min_inputs: int = 1
    # Why TF.js 4.22 cannot run this layer at all (model.json is then a 422 naming the layer;
    # the other files still work); None: TF.js has it. Config-dependent limits (a GRU with
    # reset_after: true) are checked by ``tfjs``.
    tfjs_unsupported: str | None = None
    tfjs: TfjsHook | None = None
