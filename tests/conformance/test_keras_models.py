"""/v1/models against Keras 3 (NumPy backend): Keras builds the model from the canonical spec
with the same layer names, weight names, shapes and order; ``set_weights`` takes the served
``.npz`` and ``load_weights`` the served ``.weights.h5`` (laid out as Keras saves it); Keras's
own defaults agree with ``"defaults": "keras"``."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.initializers import resolve
from app.main import create_app
from app.models import LAYER_TYPES, ModelPlan
from app.models.keras_h5 import h5_groups, snake_case
from app.models.layers import LayerType
from app.models.spec import Layer, Weight

pytestmark = pytest.mark.conformance

assert keras.backend.backend() == "numpy", keras.backend.backend()

SPECS: dict[str, dict[str, Any]] = {
    "mlp": {
        "input_shape": [784],
        "layers": [
            {"type": "dense", "units": 64, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 10, "activation": "softmax", "use_bias": False},
        ],
    },
    "cnn": {
        "input_shape": [16, 16, 3],
        "layers": [
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"},
            {"type": "batch_normalization", "center": False},
            {
                "type": "conv2d",
                "filters": 4,
                "kernel_size": [3, 2],
                "strides": 2,
                "padding": "same",
            },
            {"type": "conv2d", "filters": 4, "kernel_size": 2, "groups": 2, "dilation_rate": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ],
    },
    "sequence": {
        "input_shape": [12],
        "layers": [
            {"type": "embedding", "input_dim": 50, "output_dim": 8},
            {"type": "conv1d", "filters": 6, "kernel_size": 3, "padding": "same"},
            {"type": "lstm", "units": 8, "return_sequences": True},
            {"type": "gru", "units": 4, "return_sequences": True},
            {"type": "gru", "units": 4, "return_sequences": True, "reset_after": False},
            {"type": "simple_rnn", "units": 4, "return_sequences": True},
            {"type": "layer_normalization"},
            {"type": "batch_normalization", "axis": 1},
            {"type": "activation", "activation": "tanh"},
            {"type": "lstm", "units": 3},
        ],
    },
    "vision2d": {
        "input_shape": [8, 8, 3],
        "layers": [
            {
                "type": "conv2d_transpose",
                "filters": 4,
                "kernel_size": 3,
                "strides": 2,
                "padding": "same",
                "output_padding": 1,
            },
            {"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 2},
            {"type": "separable_conv2d", "filters": 4, "kernel_size": 3, "strides": 2},
            {"type": "p_re_lu", "shared_axes": [1, 2]},
            {"type": "max_pooling2d"},
            {"type": "zero_padding2d", "padding": [[1, 0], [0, 1]]},
            {"type": "cropping2d", "cropping": 1},
            {"type": "up_sampling2d", "interpolation": "bilinear"},
            {"type": "average_pooling2d", "pool_size": 2, "padding": "same"},
            {"type": "spatial_dropout2d", "rate": 0.1},
            {"type": "re_lu", "max_value": 6.0},
            {"type": "leaky_re_lu"},
            {"type": "global_max_pooling2d", "keepdims": True},
            {"type": "global_average_pooling2d"},
            {"type": "reshape", "target_shape": [2, -1]},
            {"type": "elu"},
            {"type": "softmax"},
        ],
    },
    "volume": {
        "input_shape": [2, 6, 6, 6],
        "layers": [
            {
                "type": "conv3d",
                "filters": 3,
                "kernel_size": 3,
                "padding": "same",
                "data_format": "channels_first",
            },
            {"type": "conv3d_transpose", "filters": 2, "kernel_size": 2, "strides": 2},
            {"type": "max_pooling3d"},
            {"type": "average_pooling3d", "pool_size": 2},
            {"type": "zero_padding3d", "padding": 1},
            {"type": "cropping3d"},
            {"type": "up_sampling3d"},
            {"type": "spatial_dropout3d", "rate": 0.2},
            {"type": "global_average_pooling3d", "keepdims": True},
            {"type": "global_max_pooling3d"},
        ],
    },
    "signal1d": {
        "input_shape": [16, 3],
        "layers": [
            {"type": "conv1d_transpose", "filters": 4, "kernel_size": 3, "strides": 2},
            {"type": "depthwise_conv1d", "kernel_size": 3},
            {"type": "separable_conv1d", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "max_pooling1d"},
            {"type": "average_pooling1d", "pool_size": 2},
            {"type": "zero_padding1d"},
            {"type": "cropping1d", "cropping": [1, 2]},
            {"type": "up_sampling1d"},
            {"type": "spatial_dropout1d", "rate": 0.1},
            {"type": "masking"},
            {"type": "gaussian_noise", "stddev": 0.1},
            {"type": "gaussian_dropout", "rate": 0.1},
            {"type": "alpha_dropout", "rate": 0.1},
            {"type": "global_max_pooling1d", "keepdims": True},
            {"type": "global_average_pooling1d"},
            {"type": "repeat_vector", "n": 5},
            {"type": "permute", "dims": [2, 1]},
            {"type": "time_distributed", "layer": {"type": "dense", "units": 3}},
            {
                "type": "bidirectional",
                "layer": {"type": "lstm", "units": 2, "return_sequences": True},
            },
            {
                "type": "bidirectional",
                "layer": {"type": "gru", "units": 2, "return_sequences": True},
                "backward_layer": {
                    "type": "gru",
                    "units": 2,
                    "return_sequences": True,
                    "go_backwards": True,
                },
                "merge_mode": "ave",
            },
            {
                "type": "bidirectional",
                "layer": {"type": "simple_rnn", "units": 2},
                "merge_mode": None,
            },
        ],
    },
}


def test_the_specs_cover_every_layer_type() -> None:
    used = {layer["type"] for spec in SPECS.values() for layer in spec["layers"]}
    # merge layers (graphs only): test_keras_topology.py
    assert used == {k for k, t in LAYER_TYPES.items() if t.infer_many is None}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def keras_layer(config: dict[str, Any], *, with_config: bool = True) -> Any:
    """The Keras layer of a canonical layer config, nested layers first (Keras's creation
    order, so fresh names count the same); without names and initializers: Keras's own."""
    kwargs = {k: v for k, v in config.items() if k != "type"}
    if not with_config:
        kwargs = {k: v for k, v in kwargs.items() if not k.endswith("_initializer")}
        kwargs.pop("name", None)
    for key in ("layer", "backward_layer"):
        if isinstance(kwargs.get(key), dict):
            kwargs[key] = keras_layer(kwargs[key], with_config=with_config)
    return getattr(keras.layers, LAYER_TYPES[config["type"]].class_name)(**kwargs)


def keras_model(spec: dict[str, Any], *, with_config: bool = True) -> keras.Sequential:
    """The Keras model of a spec: every layer from its canonical config."""
    layers = [keras_layer(layer, with_config=with_config) for layer in spec["layers"]]
    return keras.Sequential([keras.Input(tuple(spec["input_shape"])), *layers])


def keras_path(path: str) -> str:
    """A Keras 3 variable path without the model's name and the RNN cells' (our names:
    ``bidirectional/forward_lstm/kernel``)."""
    return "/".join(p for p in path.split("/")[1:] if not p.endswith("_cell"))


def post(client: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/v1/models", json={**spec, "seed": 11})
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.mark.parametrize("label", sorted(SPECS))
def test_keras_holds_the_same_weights_and_takes_the_npz(client: TestClient, label: str) -> None:
    model = post(client, SPECS[label])
    built = keras_model(model["spec"])
    assert [layer.name for layer in built.layers] == [c["name"] for c in model["spec"]["layers"]]
    ours = [(w["name"], tuple(w["shape"])) for w in model["weights"]]
    theirs = [(keras_path(v.path), tuple(v.shape)) for v in built.weights]
    assert theirs == ours
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content), allow_pickle=False)
    arrays = [npz[w["name"]] for w in model["weights"]]
    built.set_weights(arrays)
    for got, want in zip(built.get_weights(), arrays, strict=True):
        assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
    x = np.zeros((2, *SPECS[label]["input_shape"]), np.float32)
    assert np.isfinite(built.predict(x, verbose=0)).all()


@pytest.mark.parametrize("label", sorted(SPECS))
def test_keras_defaults_and_names_agree(client: TestClient, label: str) -> None:
    keras.backend.clear_session()  # Keras numbers layer names per session: dense, dense_1, ...
    spec = SPECS[label]
    model = post(client, spec)
    built = keras_model(model["spec"], with_config=False)
    assert [layer.name for layer in built.layers] == [c["name"] for c in model["spec"]["layers"]]
    # nested layers (a wrapper's) are named in the same fresh-session count
    assert [keras_path(v.path) for v in built.weights] == [w["name"] for w in model["weights"]]
    assert model["output_shape"] == list(built.outputs[0].shape[1:])
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content), allow_pickle=False)
    for layer, config in zip(built.layers, model["spec"]["layers"], strict=True):
        for field, ref in config.items():
            if field.endswith("_initializer"):
                keras_init = getattr(layer, field, None) or getattr(layer.cell, field)
                assert type(keras_init).__name__ == ref["class_name"], (layer.name, field)
        for variable in layer.weights:
            name = keras_path(variable.path)
            # deterministic starts (biases, forget gates, normalization) are Keras's own values
            if _deterministic(model, name):
                assert npz[name].tobytes() == keras.ops.convert_to_numpy(variable).tobytes(), name
    if label == "sequence":
        emb = built.layers[0].embeddings_initializer
        assert (emb.minval, emb.maxval) == (-0.05, 0.05)


def _deterministic(model: dict[str, Any], name: str) -> bool:
    entry = next(w for w in model["weights"] if w["name"] == name)
    return "seed" not in entry["initializer"]["config"]


def _keras_h5_layout(path: Path) -> dict[str, tuple[int, ...]]:
    """Every dataset of a .weights.h5 and its shape."""
    found: dict[str, tuple[int, ...]] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found[name] = obj.shape

    with h5py.File(path, "r") as h5:
        h5.visititems(visit)
    return found


@pytest.mark.parametrize("label", sorted(SPECS))
def test_keras_load_weights_reads_the_served_weights_h5(
    client: TestClient, label: str, tmp_path: Path
) -> None:
    model = post(client, SPECS[label])
    resp = client.get(model["links"]["keras_weights"])
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-hdf5"
    assert int(resp.headers["content-length"]) == len(resp.content)
    served = tmp_path / "model.weights.h5"
    served.write_bytes(resp.content)
    built = keras_model(model["spec"])
    built.load_weights(served)
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content), allow_pickle=False)
    got = built.get_weights()
    assert len(got) == len(model["weights"])
    for array, entry in zip(got, model["weights"], strict=True):
        assert array.dtype == np.float32 and array.tobytes() == npz[entry["name"]].tobytes()
    # Keras's own file of the same model: the same datasets at the same paths
    theirs = tmp_path / "keras.weights.h5"
    built.save_weights(theirs)
    assert _keras_h5_layout(served) == _keras_h5_layout(theirs)


def test_keras_object_keys_are_the_snake_case_of_every_class() -> None:
    from keras.src.utils.naming import to_snake_case

    for kind in LAYER_TYPES.values():
        assert snake_case(kind.class_name) == to_snake_case(kind.class_name), kind.class_name
    for name in ("Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "Conv3D", "ReLU"):
        assert snake_case(name) == to_snake_case(name)


def test_the_h5_rule_places_wrapped_weights_where_keras_does(tmp_path: Path) -> None:
    """Bidirectional / TimeDistributed (the wrappers' layer types come separately): weights
    named ``<layer>/<forward_lstm|backward_lstm|...>/<weight>`` with ``owner=("layer",)``
    land where Keras 3 saves them."""
    built = keras.Sequential(
        [
            keras.Input((5, 4)),
            keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True)),
            keras.layers.TimeDistributed(keras.layers.Dense(2)),
            keras.layers.Bidirectional(keras.layers.GRU(2)),
        ]
    )
    theirs = tmp_path / "keras.weights.h5"
    built.save_weights(theirs)
    zeros = resolve("zeros")
    layers = []
    for layer in built.layers:
        inner = layer.forward_layer if hasattr(layer, "forward_layer") else layer.layer
        config = {"type": layer.name, "name": layer.name, "layer": {"type": type(inner).__name__}}
        weights = tuple(
            Weight(
                # Keras's path without the model and cell: bidirectional/forward_lstm/kernel
                "/".join(p for p in v.path.split("/")[1:] if not p.endswith("_cell")),
                tuple(v.shape),
                "kernel_initializer",
                zeros,
                0,
                None,
                ("layer",),
            )
            for v in layer.weights
        )
        kind = LayerType(layer.name, type(layer).__name__, None, ())
        layers.append(Layer(kind, layer.name, config, (), (), weights))
    ours = {
        f"{path}/{i}": w.shape
        for path, _, weights in h5_groups(ModelPlan({}, 0, tuple(layers)))
        for i, w in enumerate(weights)
    }
    assert ours == _keras_h5_layout(theirs)
    assert "layers/bidirectional_1/backward_layer/cell/vars/2" in ours
