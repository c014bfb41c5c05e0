"""The TF.js ``model.json`` (LayersModel artifact) of a planned model, in the Keras 2 form
TF.js 4.22 reads (also when the model was posted as a Keras 3 topology).

A chain from one input to one output is a ``Sequential`` (its first layer carries
``batch_input_shape``); any other graph a ``Functional`` with ``InputLayer`` entries,
Keras 2 ``inbound_nodes`` (``[[["name", 0, 0, {}], ...]]``), ``input_layers`` and
``output_layers``. Nested canonical layers (a wrapper's ``layer: {"type": ...}``) are written
as ``{"class_name", "config"}``, recursively. What TF.js cannot run as configured is a
:class:`ModelUnsupportedError` naming the layer (the other files still work).
"""

from __future__ import annotations

import copy
from typing import Any

from app.models.artifacts import GENERATED_BY
from app.models.layers.tfjs import tfjs_layer
from app.models.spec import Layer, ModelPlan, nested

# What model.json says wrote it; TF.js reads the topology as Keras 2 wrote it.
KERAS_VERSION = "2.15.0"


def _written(owner: tuple[str, ...], field: str) -> tuple[tuple[str, ...], str]:
    """The model.json config field a weight's initializer is written to: a Bidirectional's
    backward weights share the forward layer's (TF.js 4.22 builds both directions from that
    one config, ``go_backwards`` flipped)."""
    return tuple("layer" if key == "backward_layer" else key for key in owner), field


def _seeds(layer: Layer) -> dict[tuple[tuple[str, ...], str], int | None]:
    """The seed written with each initializer field: the weight's, or None where the field
    stands for weights drawn with different seeds (a Bidirectional's two directions), so
    that TF.js re-initializing from model.json draws them independently, as they were."""
    seeds: dict[tuple[tuple[str, ...], str], set[int]] = {}
    for weight in layer.weights:
        seeds.setdefault(_written(weight.owner, weight.field), set()).add(weight.seed)
    return {key: next(iter(got)) if len(got) == 1 else None for key, got in seeds.items()}


def _layer(i: int, layer: Layer) -> dict[str, Any]:
    config = copy.deepcopy(layer.config)
    config["inbound"] = list(layer.inbound)  # a sequential layer's too (merge layers' arity)
    seeds = _seeds(layer)
    for weight in layer.weights:
        # TF.js never runs these (the weights are loaded); they tell a client what each
        # weight was drawn from, so a scheme TF.js cannot express (or would draw otherwise
        # for this weight's shape) is left to its default.
        owner = nested(config, weight.owner)
        if weight.initializer.tfjs_unsupported(weight.shape) is None:
            seed = seeds[_written(weight.owner, weight.field)]
            owner[weight.field] = weight.initializer.tfjs_config(seed)
        else:
            owner.pop(weight.field, None)
    # The layer type's own TF.js limits and renames (a merge layer's arity too), nested layers
    # as {class_name, config}.
    out = tfjs_layer(layer.kind, config, f"layers[{i}]", layer.input_shapes)
    out["config"].setdefault("trainable", True)
    out["config"]["dtype"] = "float32"
    return out


def _node(name: str) -> list[Any]:
    return [name, 0, 0, {}]


def topology(plan: ModelPlan) -> dict[str, Any]:
    """``modelTopology``: the Keras 2 model config TF.js 4.22 deserializes."""
    layers = [_layer(i, layer) for i, layer in enumerate(plan.layers)]
    if plan.sequential:
        layers[0]["config"]["batch_input_shape"] = [None, *plan.layers[0].input_shape]
        config: dict[str, Any] = {"name": plan.name or "sequential", "layers": layers}
        class_name = "Sequential"
    else:
        entries = [
            {
                "class_name": "InputLayer",
                "config": {
                    "batch_input_shape": [None, *x.shape],
                    "dtype": x.dtype,
                    "sparse": False,
                    "name": x.name,
                },
                "name": x.name,
                "inbound_nodes": [],
            }
            for x in plan.inputs
        ]
        for entry, layer in zip(layers, plan.layers, strict=True):
            entry["name"] = layer.name
            entry["inbound_nodes"] = [[_node(n) for n in layer.inbound]]
            entries.append(entry)
        config = {
            "name": plan.name or "model",
            "layers": entries,
            "input_layers": [[x.name, 0, 0] for x in plan.inputs],
            "output_layers": [[n, 0, 0] for n in plan.outputs],
        }
        class_name = "Functional"
    return {
        "class_name": class_name,
        "config": config,
        "keras_version": KERAS_VERSION,
        "backend": "tensorflow",
    }


def model_json(plan: ModelPlan, weights_paths: list[str]) -> dict[str, Any]:
    """The TF.js LayersModel artifact: the topology and one weights group over
    ``weights_paths`` (relative URLs: ``weights.bin``, or its shards in order)."""
    return {
        "format": "layers-model",
        "generatedBy": GENERATED_BY,
        "convertedBy": None,
        "modelTopology": topology(plan),
        "weightsManifest": [
            {
                "paths": list(weights_paths),
                "weights": [
                    {"name": w.tfjs, "shape": list(w.shape), "dtype": "float32"}
                    for w in plan.weights
                ],
            }
        ],
    }
