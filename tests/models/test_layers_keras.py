"""Every layer type of the table against real Keras 3 (NumPy backend): the output shape we
infer, and our weights' names, shapes and order, equal what Keras builds from the canonical
config, over configs incl. channels_first, padding same/valid, strides and dilation. What we
refuse, Keras refuses too."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

from typing import Any

import keras
import numpy as np
import pytest

from app.models import LAYER_TYPES, Limits, ModelSpecError, plan_model
from app.models.layers import infer, layer_type

pytestmark = pytest.mark.conformance

LIMITS = Limits(
    max_params=50_000_000,
    max_layers=256,
    max_weight_elements=16_777_216,
    max_orthogonal_work=2048**3,
    max_rank=8,
)
CF = {"data_format": "channels_first"}
LSTM = {"type": "lstm", "units": 3}

# (input shape, layer): every type at least once.
CASES: list[tuple[list[int | None], dict[str, Any]]] = [
    ([6], {"type": "dense", "units": 3}),
    ([4, 5], {"type": "flatten"}),
    ([4, 5], {"type": "flatten", **CF}),
    ([5], {"type": "dropout", "rate": 0.1}),
    ([7, 4], {"type": "dropout", "rate": 0.1, "noise_shape": [None, 1, 4], "seed": 5}),
    ([None, 4], {"type": "dropout", "rate": 0.1, "noise_shape": [None, 1, None]}),
    ([7, 4], {"type": "spatial_dropout1d", "rate": 0.2, "seed": 3}),
    ([5], {"type": "gaussian_dropout", "rate": 0.5, "seed": 2**32 - 1}),
    ([5, 2], {"type": "gaussian_noise", "stddev": 0.5, "seed": 0}),
    ([5, 2], {"type": "alpha_dropout", "rate": 0.1, "noise_shape": [None, 5, 1], "seed": 9}),
    ([7, 4], {"type": "spatial_dropout1d", "rate": 0.2}),
    ([6, 5, 4], {"type": "spatial_dropout2d", "rate": 0.2, **CF}),
    ([3, 5, 5, 4], {"type": "spatial_dropout3d", "rate": 0.2}),
    ([5], {"type": "gaussian_dropout", "rate": 1.0}),
    ([5, 2], {"type": "gaussian_noise", "stddev": 0.5}),
    ([5], {"type": "alpha_dropout", "rate": 0.1}),
    ([7, 3], {"type": "masking", "mask_value": -1.0}),
    ([5], {"type": "activation", "activation": "relu"}),
    ([9], {"type": "embedding", "input_dim": 20, "output_dim": 4}),
    ([6, 3], {"type": "batch_normalization"}),
    ([6, 3], {"type": "layer_normalization", "axis": 1}),
    ([9, 3], {"type": "conv1d", "filters": 4, "kernel_size": 3, "dilation_rate": 2}),
    (
        [10, 4],
        {"type": "conv1d", "filters": 3, "kernel_size": 3, "strides": 3, "padding": "causal"},
    ),
    (
        [9, 3],
        {"type": "conv1d", "filters": 2, "kernel_size": 4, "dilation_rate": 3, "padding": "causal"},
    ),
    ([3, 2], {"type": "conv1d", "filters": 2, "kernel_size": 5, "padding": "causal"}),
    (
        [4, 9],
        {"type": "conv1d", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "causal", **CF},
    ),
    ([None, 3], {"type": "conv1d", "filters": 2, "kernel_size": 3, "padding": "causal"}),
    ([9, 9, 4], {"type": "conv2d", "filters": 4, "kernel_size": 3, "groups": 2}),
    ([7, 6, 5, 2], {"type": "conv3d", "filters": 3, "kernel_size": [3, 2, 1], "strides": 2}),
    ([2, 7, 6, 5], {"type": "conv3d", "filters": 3, "kernel_size": 2, "padding": "same", **CF}),
    ([5, 3], {"type": "conv1d_transpose", "filters": 2, "kernel_size": 3, "strides": 2}),
    ([None, 3], {"type": "conv1d_transpose", "filters": 2, "kernel_size": 4, "padding": "same"}),
    ([5, 4, 3], {"type": "conv2d_transpose", "filters": 2, "kernel_size": 3, "strides": 2}),
    (
        [5, 4, 3],
        {
            "type": "conv2d_transpose",
            "filters": 2,
            "kernel_size": [3, 2],
            "strides": [2, 3],
            "padding": "same",
            "output_padding": [1, 2],
        },
    ),
    ([3, 5, 4], {"type": "conv2d_transpose", "filters": 2, "kernel_size": 3, **CF}),
    ([5, 4, 3], {"type": "conv2d_transpose", "filters": 2, "kernel_size": 3, "dilation_rate": 2}),
    ([3, 3, 4, 2], {"type": "conv3d_transpose", "filters": 2, "kernel_size": 2, "strides": 2}),
    (
        [3, 3, 4, 2],
        {"type": "conv3d_transpose", "filters": 2, "kernel_size": 3, "padding": "same"},
    ),
    ([8, 3], {"type": "depthwise_conv1d", "kernel_size": 3, "depth_multiplier": 2}),
    ([9, 9, 3], {"type": "depthwise_conv2d", "kernel_size": 3, "strides": 2}),
    (
        [3, 9, 8],
        {"type": "depthwise_conv2d", "kernel_size": [3, 2], "depth_multiplier": 2, **CF},
    ),
    ([9, 9, 3], {"type": "depthwise_conv2d", "kernel_size": 3, "dilation_rate": 2}),
    ([9, 9, 3], {"type": "depthwise_conv2d", "kernel_size": 3, "strides": 2, "dilation_rate": 2}),
    (
        [9, 3],
        {
            "type": "separable_conv1d",
            "filters": 2,
            "kernel_size": 2,
            "strides": 2,
            "dilation_rate": 2,
        },
    ),
    ([8, 3], {"type": "separable_conv1d", "filters": 4, "kernel_size": 3, "padding": "same"}),
    (
        [9, 9, 3],
        {"type": "separable_conv2d", "filters": 5, "kernel_size": 3, "depth_multiplier": 2},
    ),
    (
        [3, 9, 9],
        {"type": "separable_conv2d", "filters": 5, "kernel_size": 2, "strides": 2, **CF},
    ),
    ([6, 4], {"type": "simple_rnn", "units": 3, "return_sequences": True}),
    ([6, 4], {"type": "lstm", "units": 3, "go_backwards": True}),
    ([6, 4], {"type": "gru", "units": 3}),
    ([9, 3], {"type": "max_pooling1d"}),
    ([9, 3], {"type": "max_pooling1d", "pool_size": 3, "strides": 2, "padding": "same"}),
    ([3, 9], {"type": "max_pooling1d", **CF}),
    ([9, 7, 3], {"type": "max_pooling2d", "pool_size": [3, 2]}),
    ([3, 9, 7], {"type": "max_pooling2d", "padding": "same", **CF}),
    ([5, 6, 7, 2], {"type": "max_pooling3d", "strides": 1}),
    ([9, 3], {"type": "average_pooling1d", "pool_size": 4}),
    ([9, 7, 3], {"type": "average_pooling2d", "pool_size": 2, "strides": 3}),
    ([2, 5, 6, 7], {"type": "average_pooling3d", "pool_size": 2, "padding": "same", **CF}),
    ([9, 3], {"type": "global_max_pooling1d"}),
    ([3, 9], {"type": "global_max_pooling1d", "keepdims": True, **CF}),
    ([9, 7, 3], {"type": "global_max_pooling2d", "keepdims": True}),
    ([4, 5, 6, 3], {"type": "global_max_pooling3d"}),
    ([9, 3], {"type": "global_average_pooling1d", "keepdims": True}),
    ([3, 9, 7], {"type": "global_average_pooling2d", **CF}),
    ([3, 4, 5, 6], {"type": "global_average_pooling3d", "keepdims": True, **CF}),
    ([4, 6], {"type": "reshape", "target_shape": [3, -1]}),
    ([None, 6], {"type": "reshape", "target_shape": [-1, 2, 3]}),
    ([4, 6], {"type": "reshape", "target_shape": [2, 2, 6]}),
    ([2, 3, 4], {"type": "permute", "dims": [3, 1, 2]}),
    ([5], {"type": "repeat_vector", "n": 3}),
    ([5, 2], {"type": "zero_padding1d", "padding": [1, 2]}),
    ([5, 4, 2], {"type": "zero_padding2d", "padding": [[1, 0], [2, 3]]}),
    ([2, 5, 4], {"type": "zero_padding2d", "padding": [1, 2], **CF}),
    ([3, 4, 5, 2], {"type": "zero_padding3d", "padding": 2}),
    ([7, 2], {"type": "cropping1d", "cropping": [2, 1]}),
    ([7, 6, 2], {"type": "cropping2d", "cropping": [[1, 2], [0, 3]]}),
    ([2, 7, 6], {"type": "cropping2d", "cropping": 1, **CF}),
    ([5, 6, 7, 2], {"type": "cropping3d"}),
    ([5, 2], {"type": "up_sampling1d", "size": 3}),
    ([4, 3, 2], {"type": "up_sampling2d", "size": [2, 3], "interpolation": "bilinear"}),
    ([2, 4, 3], {"type": "up_sampling2d", **CF}),
    ([2, 3, 4, 2], {"type": "up_sampling3d", "size": [1, 2, 3]}),
    ([5, 3], {"type": "re_lu", "max_value": 6.0, "negative_slope": 0.1, "threshold": 0.5}),
    ([5], {"type": "leaky_re_lu", "negative_slope": 0.2}),
    ([5], {"type": "elu", "alpha": 0.5}),
    ([5, 3], {"type": "softmax", "axis": 1}),
    ([4, 5, 3], {"type": "p_re_lu"}),
    ([4, 5, 3], {"type": "p_re_lu", "shared_axes": [1, 2]}),
    ([6, 4], {"type": "time_distributed", "layer": {"type": "dense", "units": 3}}),
    (
        [6, 8, 8, 3],
        {
            "type": "time_distributed",
            "layer": {"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 2},
        },
    ),
    (
        [5, 6, 4],
        {"type": "time_distributed", "layer": {"type": "bidirectional", "layer": LSTM}},
    ),
    ([6, 4], {"type": "bidirectional", "layer": {**LSTM, "return_sequences": True}}),
    ([6, 4], {"type": "bidirectional", "layer": {"type": "gru", "units": 2}, "merge_mode": "sum"}),
    (
        [6, 4],
        {"type": "bidirectional", "layer": {"type": "simple_rnn", "units": 2}, "merge_mode": "mul"},
    ),
    ([6, 4], {"type": "bidirectional", "layer": LSTM, "merge_mode": "ave"}),
    ([6, 4], {"type": "bidirectional", "layer": LSTM, "merge_mode": None}),
    (
        [6, 4],
        {
            "type": "bidirectional",
            "layer": LSTM,
            "backward_layer": {"type": "gru", "units": 3, "go_backwards": True},
        },
    ),
]


def keras_config(config: dict[str, Any]) -> dict[str, Any]:
    """Our canonical layer config as Keras serializes a layer (nested layers too)."""
    inner = {k: v for k, v in config.items() if k != "type"}
    for key in ("layer", "backward_layer"):
        if isinstance(inner.get(key), dict):
            inner[key] = keras_config(inner[key])
    cls = LAYER_TYPES[config["type"]].class_name
    return {"module": "keras.layers", "class_name": cls, "config": inner}


def keras_path(path: str) -> str:
    """A Keras 3 variable path without the model's name and the RNN cells' (our names)."""
    return "/".join(p for p in path.split("/")[1:] if not p.endswith("_cell"))


def plan(input_shape: list[int | None], layer: dict[str, Any]) -> Any:
    return plan_model({"input_shape": input_shape, "layers": [layer], "seed": 1}, LIMITS)


def test_the_cases_cover_every_layer_type() -> None:
    # merge layers (several inputs): tests/conformance/test_keras_topology.py
    assert {layer["type"] for _, layer in CASES} == {
        k for k, t in LAYER_TYPES.items() if t.infer_many is None
    }


def _id(case: tuple[list[int | None], dict[str, Any]]) -> str:
    shape, layer = case
    return f"{layer['type']}-{'x'.join(str(d) for d in shape)}-{len(layer)}"


# A layer-list input_shape is concrete; open axes (topologies) go through the table directly.
CONCRETE = [c for c in CASES if None not in c[0]]


@pytest.mark.parametrize("case", CONCRETE, ids=[_id(c) for c in CONCRETE])
def test_shapes_and_weights_equal_keras(case: tuple[list[int | None], dict[str, Any]]) -> None:
    input_shape, layer = case
    ours = plan(input_shape, layer)
    (only,) = ours.layers
    built = keras.layers.deserialize(keras_config(only.config))
    model = keras.Sequential([keras.Input(tuple(input_shape)), built])
    # the canonical config planned again infers the same (all outputs: merge_mode None has 2)
    again = infer(only.kind, only.config, (tuple(input_shape),), "layers[0]", "keras")
    assert again.output_shape == only.output_shape
    assert [tuple(t.shape[1:]) for t in model.outputs] == list(again.outputs)
    theirs = [(keras_path(v.path), tuple(v.shape)) for v in built.weights]
    assert theirs == [(w.name, w.shape) for w in ours.weights]


@pytest.mark.parametrize("case", [c for c in CASES if None in c[0]], ids=_id)
def test_open_dimensions_stay_open_as_in_keras(
    case: tuple[list[int | None], dict[str, Any]],
) -> None:
    input_shape, layer = case
    kind = layer_type(layer["type"], "layers[0]")
    ours = infer(kind, layer, (tuple(input_shape),), "layers[0]", "keras")
    built = keras.layers.deserialize(keras_config({**ours.config, "type": kind.type}))
    model = keras.Sequential([keras.Input(tuple(input_shape)), built])
    assert tuple(model.outputs[0].shape[1:]) == ours.output_shape
    assert [tuple(v.shape) for v in built.weights] == [w.shape for w in ours.weights]


# (input shape, layer, the field our refusal names): Keras refuses each too.
REFUSED: list[tuple[list[int], dict[str, Any], str]] = [
    ([5, 3], {"type": "conv2d", "filters": 2, "kernel_size": 3}, "type"),
    (
        [9, 9, 3],
        {
            "type": "conv2d_transpose",
            "filters": 2,
            "kernel_size": 3,
            "strides": 2,
            "dilation_rate": 2,
        },
        "dilation_rate",
    ),
    (
        [5, 3],
        {
            "type": "conv1d_transpose",
            "filters": 2,
            "kernel_size": 3,
            "dilation_rate": 2,
            "output_padding": 1,
        },
        "output_padding",
    ),
    ([2, 2, 3], {"type": "max_pooling2d", "pool_size": 3}, "pool_size"),
    ([4, 4, 2], {"type": "cropping2d", "cropping": 2}, "cropping"),
    ([4, 3], {"type": "conv1d", "filters": 2, "kernel_size": 5}, "kernel_size"),
    ([4, 6], {"type": "reshape", "target_shape": [5, 5]}, "target_shape"),
    ([4, 6], {"type": "reshape", "target_shape": [5, -1]}, "target_shape"),
    ([2, 3], {"type": "permute", "dims": [1, 3]}, "dims"),
    ([2, 3], {"type": "repeat_vector", "n": 2}, "type"),
    ([4, 5, 3], {"type": "p_re_lu", "shared_axes": [4]}, "shared_axes"),
    ([6, 4], {"type": "bidirectional", "layer": {"type": "dense", "units": 2}}, "layer"),
    (
        [6, 4],
        {"type": "bidirectional", "layer": LSTM, "backward_layer": LSTM},
        "backward_layer",
    ),
    (
        [6, 4],
        {"type": "time_distributed", "layer": {"type": "conv1d", "filters": 2}},
        "layer.type",
    ),
    ([6], {"type": "time_distributed", "layer": {"type": "dense", "units": 2}}, "type"),
    ([5], {"type": "gaussian_noise", "stddev": 1.5}, "stddev"),
    ([9, 9, 3], {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "causal"}, "padding"),
    (
        [9, 3],
        {"type": "conv1d_transpose", "filters": 2, "kernel_size": 3, "padding": "causal"},
        "padding",
    ),
    ([9, 3], {"type": "depthwise_conv1d", "kernel_size": 3, "padding": "causal"}, "padding"),
    (
        [9, 3],
        {"type": "separable_conv1d", "filters": 2, "kernel_size": 3, "padding": "causal"},
        "padding",
    ),
    ([5], {"type": "alpha_dropout", "rate": 1.5}, "rate"),
    ([5], {"type": "re_lu", "threshold": -1.0}, "threshold"),
    ([5], {"type": "leaky_re_lu", "negative_slope": -0.1}, "negative_slope"),
]


@pytest.mark.parametrize(
    ("input_shape", "layer", "field"), REFUSED, ids=[f"{r[1]['type']}-{r[2]}" for r in REFUSED]
)
def test_what_we_refuse_keras_refuses(
    input_shape: list[int], layer: dict[str, Any], field: str
) -> None:
    with pytest.raises(ModelSpecError) as refused:
        plan(input_shape, layer)
    assert refused.value.field == f"layers[0].{field}"
    with pytest.raises((ValueError, TypeError, IndexError)):
        built = keras.layers.deserialize(keras_config(layer))
        keras.Sequential([keras.Input(tuple(input_shape)), built])


# (input shape, layer): a noise_shape we refuse (naming it); Keras cannot train the layer.
UNTRAINABLE = [
    ([5, 4], {"type": "dropout", "rate": 0.5, "noise_shape": [None, 4]}),
    ([5, 4], {"type": "dropout", "rate": 0.5, "noise_shape": [None, 2, 4]}),
    ([5, 4], {"type": "alpha_dropout", "rate": 0.5, "noise_shape": [None, 5, 1, 1]}),
    ([5, 4], {"type": "alpha_dropout", "rate": 0.5, "noise_shape": [None, 5, 3]}),
]


@pytest.mark.parametrize(("input_shape", "layer"), UNTRAINABLE, ids=str)
def test_a_noise_shape_we_refuse_keras_cannot_train(
    input_shape: list[int], layer: dict[str, Any]
) -> None:
    with pytest.raises(ModelSpecError) as refused:
        plan(input_shape, layer)
    assert refused.value.field == "layers[0].noise_shape"
    built = keras.layers.deserialize(keras_config(layer))
    with pytest.raises(ValueError):
        built(np.ones((2, *input_shape), np.float32), training=True)
