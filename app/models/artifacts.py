"""A planned model's files: weights generated one at a time, the TF.js ``model.json`` and
safetensors (the ``.npz``, ``.weights.h5`` and shards: their own modules). Every weight is
little-endian float32, C order, manifest order.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from app.initializers import generate
from app.models.errors import ModelUnsupportedError
from app.models.spec import Layer, ModelPlan, Weight, nested

# What model.json says wrote it; TF.js reads the topology as Keras 2 wrote it.
KERAS_VERSION = "2.15.0"
GENERATED_BY = "initlab"


def weight_values(weight: Weight) -> np.ndarray:
    """The weight's values: its initializer at its own seed (Keras layout, float32)."""
    arr = generate(weight.initializer, weight.shape, seed=weight.seed, dtype="float32")
    if weight.forget_units is not None:
        # Keras unit_forget_bias: the forget gate's block (gates i, f, c, o) starts at one.
        arr = arr.copy()
        arr[weight.forget_units : 2 * weight.forget_units] = 1.0
    return np.ascontiguousarray(arr, dtype="<f4")


def iter_weights(plan: ModelPlan) -> Iterator[memoryview]:
    """``weights.bin``, one weight per chunk, each a view of its array (no copy; memory:
    about the largest weight). Generating the next weight while one is sent measured slower
    on 2 shared cores (bench/results/models.md)."""
    for weight in plan.weights:
        yield weight_values(weight).reshape(-1).view(np.uint8).data


def safetensors_head(plan: ModelPlan) -> bytes:
    """The safetensors header (keys ``layer/weight``, spec and seed in the metadata); the
    weights follow it in manifest order, exactly as :func:`iter_weights` yields them."""
    doc: dict[str, Any] = {
        "__metadata__": {
            "spec": orjson.dumps(plan.spec, option=orjson.OPT_SORT_KEYS).decode(),
            "seed": str(plan.seed),
            "generated_by": GENERATED_BY,
        }
    }
    offset = 0
    for weight in plan.weights:
        end = offset + 4 * weight.size
        doc[weight.name] = {
            "dtype": "F32",
            "shape": list(weight.shape),
            "data_offsets": [offset, end],
        }
        offset = end
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _tfjs_layer(i: int, layer: Layer) -> dict[str, Any]:
    config = {k: copy.deepcopy(v) for k, v in layer.config.items() if k != "type"}
    if layer.kind.tfjs_unsupported is not None:
        raise ModelUnsupportedError(
            f"layers[{i}].type",
            layer.kind.class_name,
            f"{layer.kind.tfjs_unsupported} (layer {layer.name!r}); "
            "use weights.bin / .safetensors / .npz",
        )
    if layer.config.get("reset_after"):
        raise ModelUnsupportedError(
            f"layers[{i}].reset_after",
            True,
            f"TF.js 4.22 cannot run a GRU with reset_after: true (layer {layer.name!r}); "
            "post it with reset_after: false, or use weights.bin / .safetensors / .npz",
        )
    if layer.config.get("groups", 1) != 1:
        raise ModelUnsupportedError(
            f"layers[{i}].groups",
            layer.config["groups"],
            f"TF.js 4.22 has no grouped convolution (layer {layer.name!r})",
        )
    for weight in layer.weights:
        # TF.js never runs these (the weights are loaded); they tell a client what each
        # weight was drawn from, so a scheme TF.js cannot express is left to its default.
        owner = nested(config, weight.owner)
        if weight.initializer.tfjs_unsupported() is None:
            owner[weight.field] = weight.initializer.tfjs_config(weight.seed)
        else:
            owner.pop(weight.field, None)
    config.update(trainable=True, dtype="float32")
    if i == 0:
        config["batch_input_shape"] = [None, *layer.input_shape]
    return {"class_name": layer.kind.class_name, "config": config}


def model_json(plan: ModelPlan, weights_paths: list[str]) -> dict[str, Any]:
    """The TF.js LayersModel artifact: Keras-2 Sequential topology + one weights group whose
    files (relative to model.json) hold the weights back to back."""
    layers = [_tfjs_layer(i, layer) for i, layer in enumerate(plan.layers)]
    return {
        "format": "layers-model",
        "generatedBy": GENERATED_BY,
        "convertedBy": None,
        "modelTopology": {
            "class_name": "Sequential",
            "config": {"name": "sequential", "layers": layers},
            "keras_version": KERAS_VERSION,
            "backend": "tensorflow",
        },
        "weightsManifest": [
            {
                "paths": weights_paths,
                "weights": [
                    {"name": w.name, "shape": list(w.shape), "dtype": "float32"}
                    for w in plan.weights
                ],
            }
        ],
    }
