"""Keras 3 topologies (``model.to_json()``, NumPy backend) posted to /v1/models: the plan's
weight names, shapes and order are Keras's ``model.weights``; ``set_weights`` takes the .npz;
Keras builds the same model from our canonical graph spec; the merge layers infer the output
shapes Keras infers and refuse what Keras refuses; shared layers and nested models are refused."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.models import LAYER_TYPES, ModelSpecError, plan_model
from tests.conformance import keras_topologies as kt
from tests.models.test_models_spec import LIMITS

pytestmark = pytest.mark.conformance

L = keras.layers


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def post(client: TestClient, topology: Any) -> dict[str, Any]:
    resp = client.post("/v1/models", json={"topology": topology, "seed": 5})
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.mark.parametrize("name", sorted(kt.MODELS))
def test_the_fixtures_are_what_keras_writes(name: str) -> None:
    assert json.loads(kt.fixture(name).read_text()) == json.loads(kt.build(name).to_json())


def _keras_weights(model: keras.Model) -> list[tuple[str, tuple[int, ...]]]:
    # model.weights order; a weight is named by its Keras variable path without the model's
    # name and the RNN cell (bidirectional/forward_lstm/lstm_cell/kernel → .../forward_lstm/kernel)
    def name(path: str) -> str:
        parts = path.split("/")
        if parts[0] == model.name:
            parts = parts[1:]
        return "/".join(p for p in parts if not (p == "cell" or p.endswith("_cell")))

    return [(name(v.path), tuple(v.shape)) for v in model.weights]


def _keras_output_shapes(model: keras.Model) -> list[list[int | None]]:
    """Keras's ``model.output_shape`` (one shape, or a list of them), batch excluded."""
    shapes = model.output_shape if len(model.outputs) > 1 else [model.output_shape]
    return [list(shape[1:]) for shape in shapes]


def test_a_two_output_layer_gives_the_model_two_output_shapes(client: TestClient) -> None:
    # (a topology cannot say it: its output_layers' tensor_index > 0 is refused)
    keras.backend.clear_session()
    x = keras.Input((5, 3))
    both = L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=None)(x)
    built = keras.Model(x, [*both, L.Dense(2)(x)])
    resp = client.post(
        "/v1/models",
        json={
            "inputs": [{"name": "x", "shape": [5, 3]}],
            "layers": [
                {
                    "type": "bidirectional",
                    "name": "b",
                    "merge_mode": None,
                    "inbound": ["x"],
                    "layer": {"type": "gru", "units": 4, "return_sequences": True},
                },
                {"type": "dense", "name": "d", "units": 2, "inbound": ["x"]},
            ],
            "outputs": ["b", "d"],
            "seed": 1,
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["output_shapes"] == _keras_output_shapes(built) == [[5, 4], [5, 4], [5, 2]]


def _from_spec(spec: dict[str, Any]) -> keras.Model:
    """Keras's model of our canonical graph spec: each layer from its config, called on its
    inbound tensors."""
    tensors = {i["name"]: keras.Input(tuple(i["shape"]), name=i["name"]) for i in spec["inputs"]}
    for layer in spec["layers"]:
        config = {k: v for k, v in layer.items() if k not in ("type", "inbound")}
        made = getattr(L, LAYER_TYPES[layer["type"]].class_name)(**config)
        args = [tensors[n] for n in layer["inbound"]]
        merge = LAYER_TYPES[layer["type"]].infer_many is not None
        tensors[layer["name"]] = made(args if merge else args[0])
    inputs = [tensors[i["name"]] for i in spec["inputs"]]
    return keras.Model(inputs, [tensors[n] for n in spec["outputs"]])


@pytest.mark.parametrize("name", sorted(kt.MODELS))
def test_keras_topologies_plan_keras_weights_and_take_the_npz(
    client: TestClient, name: str
) -> None:
    built = kt.build(name)
    model = post(client, built.to_json())
    assert [(w["name"], tuple(w["shape"])) for w in model["weights"]] == _keras_weights(built)
    assert model["output_shapes"] == _keras_output_shapes(built)
    assert model["output_shape"] == model["output_shapes"][0]
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content), allow_pickle=False)
    arrays = [npz[w["name"]] for w in model["weights"]]
    built.set_weights(arrays)
    for got, want in zip(built.get_weights(), arrays, strict=True):
        assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
    xs = [np.ones((2, *x.shape[1:]), np.float32) for x in built.inputs]
    for y in keras.tree.flatten(built.predict(xs if len(xs) > 1 else xs[0], verbose=0)):
        assert np.isfinite(y).all()
    if "inputs" in model["spec"]:
        again = _from_spec(model["spec"])
        assert _keras_weights(again) == _keras_weights(built)
        assert [o.shape for o in again.outputs] == [o.shape for o in built.outputs]


def test_the_same_graph_in_any_layer_order_is_the_same_model(client: TestClient) -> None:
    spec = post(client, kt.build("two_in_two_out").to_json())["spec"]
    shuffled = {**spec, "layers": spec["layers"][::-1], "seed": 5}
    again = client.post("/v1/models", json=shuffled).json()
    assert again["spec"] == spec
    assert [w["name"] for w in again["weights"]] == [
        w for w, _ in _keras_weights(kt.build("two_in_two_out"))
    ]


def _keras_shape(layer: keras.layers.Layer, shapes: list[tuple[int | None, ...]]) -> Any:
    keras.backend.clear_session()
    out = layer([keras.Input(s) for s in shapes])
    return tuple(out.shape[1:])


MERGES = [
    (L.Add(), [(3, 4), (3, 4)]),
    (L.Add(), [(3, 4), (1, 4), (3, 1)]),
    (L.Multiply(), [(5, 1), (1, 6)]),
    (L.Average(), [(None, 4), (7, 4)]),
    (L.Maximum(), [(4,), (2, 4)]),  # ranks differ: broadcast from the right
    (L.Minimum(), [(3, 4), (3, 5)]),  # refused
    (L.Subtract(), [(2, 3), (2, 3)]),
    (L.Subtract(), [(2, 3), (2, 3), (2, 3)]),  # refused: exactly 2
    (L.Concatenate(), [(3, 4), (3, 6)]),
    (L.Concatenate(axis=1), [(3, 4), (5, 4), (None, 4)]),
    (L.Concatenate(axis=-2), [(2, 3, 4), (2, 1, 4)]),
    (L.Concatenate(), [(3, 4), (5, 6)]),  # refused
    (L.Concatenate(), [(3, 4), (3,)]),  # refused: ranks
    (L.Dot(axes=1), [(4,), (4,)]),
    (L.Dot(axes=-1), [(3, 4), (5, 4)]),
    (L.Dot(axes=[1, 2]), [(3, 4), (5, 3)]),
    (L.Dot(axes=1, normalize=True), [(3, 4), (3, 6)]),
    (L.Dot(axes=1), [(3,), (4,)]),  # refused
]


@pytest.mark.parametrize(("layer", "shapes"), MERGES, ids=lambda v: str(v)[:40])
def test_merge_layers_infer_what_keras_infers(layer: keras.layers.Layer, shapes: Any) -> None:
    try:
        want = _keras_shape(layer, shapes)
    except ValueError:
        want = None
    raw = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "dtype")}
    body = {
        "inputs": [{"name": f"x{i}", "shape": list(s)} for i, s in enumerate(shapes)],
        "layers": [
            {"type": type(layer).__name__, **raw, "inbound": [f"x{i}" for i in range(len(shapes))]}
        ],
        "seed": 1,
    }
    if want is None:
        with pytest.raises(ModelSpecError):
            plan_model(body, LIMITS)
    else:
        assert plan_model(body, LIMITS).layers[0].output_shape == want


def _problem(client: TestClient, topology: Any) -> dict[str, Any]:
    resp = client.post("/v1/models", json={"topology": topology})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    return resp.json()


def test_a_shared_layer_is_refused_naming_its_second_call(client: TestClient) -> None:
    keras.backend.clear_session()
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    shared = L.Dense(2, name="shared")
    model = keras.Model([a, b], L.Add()([shared(a), shared(b)]))
    problem = _problem(client, model.to_json())
    assert problem["detail"].startswith("topology.config.layers[2].inbound_nodes:")
    assert "shared" in problem["detail"]


def test_a_nested_model_is_refused(client: TestClient) -> None:
    keras.backend.clear_session()
    inner = keras.Sequential([keras.Input((3,)), L.Dense(2)], name="inner")
    x = keras.Input((3,))
    model = keras.Model(x, L.Dense(1)(inner(x)))
    problem = _problem(client, model.to_json())
    assert problem["detail"].startswith("topology.config.layers[1].class_name: nested models")


def test_a_bad_field_is_named_by_the_topologys_own_path(client: TestClient) -> None:
    topology = json.loads(kt.fixture("two_in_two_out").read_text())
    conv = next(i for i, x in enumerate(topology["config"]["layers"]) if x["name"] == "conv")
    topology["config"]["layers"][conv]["config"]["kernel_size"] = [9, 9]
    problem = _problem(client, topology)
    assert problem["detail"].startswith(
        f"topology.config.layers[{conv}].config.kernel_size: spans 9"
    )
    assert problem["errors"][0]["loc"] == [
        "body",
        "topology",
        "config",
        "layers",
        conv,
        "config",
        "kernel_size",
    ]


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"stateful": True}, "stateful", "stateful"),
        ({"return_state": True}, "return_state", "return_state"),
        (
            {
                "dtype": {
                    "module": "keras",
                    "class_name": "DTypePolicy",
                    "config": {"name": "mixed_float16"},
                }
            },
            "dtype",
            "float32",
        ),
        (
            {"kernel_regularizer": {"class_name": "OrthogonalRegularizer", "config": {}}},
            "kernel_regularizer",
            "L1L2",
        ),
    ],
)
def test_what_would_change_the_model_is_refused_not_dropped(
    client: TestClient, change: dict[str, Any], field: str, says: str
) -> None:
    topology = json.loads(kt.fixture("sequential").read_text())
    topology["config"]["layers"][2]["config"].update(change)  # the LSTM
    problem = _problem(client, topology)
    assert problem["detail"].startswith(f"topology.config.layers[2].config.{field}:")
    assert says in problem["detail"]


def test_a_causal_conv1d_topology_plans_keras_weights_and_loads_its_h5(
    client: TestClient, tmp_path: Path
) -> None:
    keras.backend.clear_session()
    built = keras.Sequential(
        [
            keras.Input((10, 4)),
            L.Conv1D(3, 3, strides=3, padding="causal"),
            L.Conv1D(2, 2, dilation_rate=2, padding="causal"),
            L.Flatten(),
            L.Dense(2),
        ]
    )
    model = post(client, built.to_json())
    assert [(w["name"], tuple(w["shape"])) for w in model["weights"]] == _keras_weights(built)
    assert [layer["padding"] for layer in model["spec"]["layers"][:2]] == ["causal"] * 2
    served = tmp_path / "causal.weights.h5"
    served.write_bytes(client.get(model["links"]["keras_weights"]).content)
    built.load_weights(served)
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content), allow_pickle=False)
    for got, entry in zip(built.get_weights(), model["weights"], strict=True):
        assert got.tobytes() == npz[entry["name"]].tobytes()
    assert model["output_shape"] == list(built.outputs[0].shape[1:])
    # TF.js 4.22 cannot run causal padding: model.json says so, naming the field
    refused = client.get(model["links"]["model_json"])
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("layers[0].padding: TF.js 4.22")
