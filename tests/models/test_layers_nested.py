"""Wrappers' nested layers through the spec and the TF.js writer: names, initializers at the
nested config, the canonical spec planned again, model.json's nested {class_name, config}
and TF.js's weight names (the loading itself: tests/conformance/tfjs/layers.test.mjs)."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Limits, ModelSpecError, ModelUnsupportedError, model_json, plan_model

LIMITS = Limits(
    max_params=1_000_000,
    max_layers=16,
    max_weight_elements=1_000_000,
    max_orthogonal_work=2**30,
    max_rank=8,
)
GRU = {"type": "gru", "units": 2, "reset_after": False}


def plan(input_shape: list[int], *layers: dict[str, Any], **extra: Any) -> Any:
    body = {"input_shape": input_shape, "layers": list(layers), "seed": 3, **extra}
    return plan_model(body, LIMITS)


def test_nested_layers_are_named_in_keras_creation_order() -> None:
    p = plan(
        [5, 6, 4],
        {"type": "time_distributed", "layer": {"type": "bidirectional", "layer": GRU}},
        {"type": "time_distributed", "layer": {"type": "dense", "units": 2}},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
    )
    assert [layer.name for layer in p.layers] == [
        "time_distributed",
        "time_distributed_1",
        "flatten",
        "dense_1",  # the inner Dense was created first: dense
    ]
    assert [w.name for w in p.weights][:3] == [
        "time_distributed/bidirectional/forward_gru/kernel",
        "time_distributed/bidirectional/forward_gru/recurrent_kernel",
        "time_distributed/bidirectional/forward_gru/bias",
    ]
    assert p.spec["layers"][0]["layer"]["layer"]["name"] == "gru"
    assert p.spec["layers"][1]["layer"]["name"] == "dense"


def test_inner_initializers_are_read_and_written_in_the_nested_config() -> None:
    inner = {**GRU, "kernel_initializer": "he_normal"}
    p = plan([6, 4], {"type": "bidirectional", "layer": inner})
    forward, backward = p.weights[0], p.weights[3]
    assert forward.name == "bidirectional/forward_gru/kernel"
    assert backward.name == "bidirectional/backward_gru/kernel"
    assert forward.initializer.keras_config(0)["class_name"] == "HeNormal"
    assert forward.seed != backward.seed  # two draws, as Keras makes two layers
    layer = p.spec["layers"][0]
    assert layer["layer"]["kernel_initializer"]["class_name"] == "HeNormal"
    assert "kernel_initializer" not in layer
    with pytest.raises(ModelSpecError) as refused:
        plan([6, 4], {"type": "bidirectional", "layer": {**GRU, "kernel_initializer": "nope"}})
    assert refused.value.field == "layers[0].layer.kernel_initializer"


def test_the_canonical_spec_plans_to_the_same_model() -> None:
    seq = {**GRU, "return_sequences": True}
    p = plan(
        [6, 4],
        {"type": "bidirectional", "layer": seq, "backward_layer": {**seq, "go_backwards": True}},
        {"type": "time_distributed", "layer": {"type": "dense", "units": 3}},
        {"type": "re_lu"},
    )
    again = plan_model({**p.spec, "seed": p.seed}, LIMITS)
    assert again.id == p.id and again.spec == p.spec
    assert [w.name for w in again.weights] == [w.name for w in p.weights]


def test_model_json_writes_nested_layers_and_tfjs_names() -> None:
    p = plan(
        [6, 6, 3],
        {"type": "depthwise_conv2d", "kernel_size": 3},
        {"type": "time_distributed", "layer": {"type": "dense", "units": 2}},
        {"type": "leaky_re_lu", "negative_slope": 0.1},
        {"type": "time_distributed", "layer": {"type": "bidirectional", "layer": GRU}},
        {"type": "global_max_pooling1d"},
    )
    doc = model_json(p, ["weights.bin"])
    layers = doc["modelTopology"]["config"]["layers"]
    wrapped = layers[3]["config"]["layer"]
    assert wrapped["class_name"] == "Bidirectional"
    assert wrapped["config"]["layer"]["class_name"] == "GRU"
    assert "backward_layer" not in wrapped["config"]
    assert "type" not in wrapped["config"]["layer"]["config"]
    assert layers[2]["config"]["alpha"] == 0.1 and "negative_slope" not in layers[2]["config"]
    assert "keepdims" not in layers[4]["config"]
    names = [w["name"] for w in doc["weightsManifest"][0]["weights"]]
    assert names[:3] == [
        "depthwise_conv2d/depthwise_kernel",
        "depthwise_conv2d/bias",
        "time_distributed/kernel",
    ]
    assert names[4] == "time_distributed_1/forward_gru/kernel"
    assert [w.name for w in p.weights][:3] == [
        "depthwise_conv2d/kernel",
        "depthwise_conv2d/bias",
        "time_distributed/dense/kernel",
    ]


def test_an_inner_layer_tfjs_cannot_run_is_named_at_its_nesting() -> None:
    p = plan([5, 6, 4], {"type": "time_distributed", "layer": {"type": "gru", "units": 2}})
    with pytest.raises(ModelUnsupportedError) as refused:
        model_json(p, ["weights.bin"])
    assert refused.value.field == "layers[0].layer.reset_after"


def test_nesting_is_bounded_before_anything_recurses_deep() -> None:
    layer: dict[str, Any] = {"type": "dense", "units": 2}
    for _ in range(5000):
        layer = {"type": "time_distributed", "layer": layer}
    with pytest.raises(ModelSpecError) as refused:
        plan([3] * 6, layer)
    assert refused.value.field == "layers[0]" + ".layer" * 5
    assert "more than 4 deep" in refused.value.msg
