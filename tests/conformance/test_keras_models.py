"""/v1/models against Keras 3 (NumPy backend): Keras builds the model from the canonical spec
with the same layer names, weight names, shapes and order; ``set_weights`` takes the served
``.npz``; Keras's own defaults agree with ``"defaults": "keras"``."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

import io
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.models import LAYER_TYPES

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
}


def test_the_specs_cover_every_layer_type() -> None:
    used = {layer["type"] for spec in SPECS.values() for layer in spec["layers"]}
    # merge layers (graphs only): test_keras_topology.py
    assert used == {k for k, t in LAYER_TYPES.items() if t.infer_many is None}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def keras_model(spec: dict[str, Any], *, with_config: bool = True) -> keras.Sequential:
    """The Keras model of a spec: every layer from its canonical config (or without its names
    and initializers: Keras's own defaults)."""
    layers: list[Any] = [keras.Input(tuple(spec["input_shape"]))]
    for layer in spec["layers"]:
        config = {k: v for k, v in layer.items() if k != "type"}
        if not with_config:
            config = {k: v for k, v in config.items() if not k.endswith("_initializer")}
            config.pop("name", None)
        class_name = LAYER_TYPES[layer["type"]].class_name
        layers.append(getattr(keras.layers, class_name)(**config))
    return keras.Sequential(layers)


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
    theirs = [
        (f"{layer.name}/{v.name}", tuple(v.shape)) for layer in built.layers for v in layer.weights
    ]
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
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content), allow_pickle=False)
    for layer, config in zip(built.layers, model["spec"]["layers"], strict=True):
        for field, ref in config.items():
            if field.endswith("_initializer"):
                keras_init = getattr(layer, field, None) or getattr(layer.cell, field)
                assert type(keras_init).__name__ == ref["class_name"], (layer.name, field)
        for variable in layer.weights:
            name = f"{layer.name}/{variable.name}"
            # deterministic starts (biases, forget gates, normalization) are Keras's own values
            if _deterministic(model, name):
                assert npz[name].tobytes() == keras.ops.convert_to_numpy(variable).tobytes(), name
    if label == "sequence":
        emb = built.layers[0].embeddings_initializer
        assert (emb.minval, emb.maxval) == (-0.05, 0.05)


def _deterministic(model: dict[str, Any], name: str) -> bool:
    entry = next(w for w in model["weights"] if w["name"] == name)
    return "seed" not in entry["initializer"]["config"]
