"""A planned model's files: weights generated one at a time and safetensors (the TF.js
``model.json``: :mod:`app.models.tfjs`; the ``.npz``, ``.weights.h5`` and shards: their own
modules). Every weight is little-endian float32, C order, manifest order.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from app.initializers import generate
from app.models.spec import ModelPlan, Weight

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
    about the largest weight). Generating the next weight while one is sent, or sending a
    weight's finished chunks while the rest are generated, measured no faster on 2 shared
    cores (bench/results/models.md)."""
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
