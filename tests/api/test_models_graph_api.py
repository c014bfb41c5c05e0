"""/v1/models over HTTP with functional graphs and Keras / TF.js topologies: created, read back
from the stored canonical spec, every weight reproduced through /v1/tensors, a Functional
model.json, and problem+json refusals naming the graph's or the topology's own path."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.test_models_api import post, tensor_of

FIXTURES = Path(__file__).resolve().parents[1] / "conformance" / "tfjs" / "fixtures"
GRAPH = {
    "inputs": [{"name": "img", "shape": [6, 6, 1]}, {"name": "meta", "shape": [3]}],
    "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "inbound": ["img"]},
        {"type": "flatten"},
        {"type": "dense", "name": "m", "units": 32, "inbound": ["meta"]},
        {"type": "concatenate", "inbound": ["flatten", "m"]},
        {"type": "dense", "name": "out", "units": 2, "kernel_initializer": "he_normal"},
        {"type": "dense", "name": "aux", "units": 1, "inbound": ["m"]},
    ],
    "outputs": ["out", "aux"],
    "seed": 12,
}


def test_a_graph_posts_reads_back_and_reproduces_every_weight(client: TestClient) -> None:
    model = post(client, GRAPH)
    assert client.get(model["links"]["self"]).json() == model
    assert [w["name"] for w in model["weights"]] == [
        "conv2d/kernel", "conv2d/bias", "m/kernel", "m/bias",
        "out/kernel", "out/bias", "aux/kernel", "aux/bias",
    ]  # fmt: skip
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content))
    blob = np.frombuffer(client.get(model["links"]["weights_bin"]).content, "<f4")
    offset = 0
    for entry in model["weights"]:
        want = tensor_of(client, entry)
        assert npz[entry["name"]].tobytes() == want.tobytes(), entry["name"]
        assert blob[offset : offset + want.size].tobytes() == want.tobytes()
        offset += want.size
    doc = client.get(model["links"]["model_json"]).json()["modelTopology"]
    assert doc["class_name"] == "Functional"
    assert doc["config"]["output_layers"] == [["out", 0, 0], ["aux", 0, 0]]


def test_every_output_has_its_shape_in_output_order(client: TestClient) -> None:
    model = post(client, GRAPH)
    assert model["output_shapes"] == [[2], [1]]
    assert model["output_shape"] == [2]  # the first output's
    reordered = post(client, {**GRAPH, "outputs": ["aux", "out"]})
    assert (reordered["output_shapes"], reordered["output_shape"]) == ([[1], [2]], [1])
    # a Bidirectional with merge_mode null gives the model two outputs, as in Keras
    two = post(
        client,
        {
            "input_shape": [5, 3],
            "seed": 1,
            "layers": [
                {
                    "type": "bidirectional",
                    "merge_mode": None,
                    "layer": {"type": "gru", "units": 4, "return_sequences": True},
                }
            ],
        },
    )
    assert two["output_shapes"] == [[5, 4], [5, 4]]
    for got in (model, reordered, two):
        assert client.get(got["links"]["self"]).json()["output_shapes"] == got["output_shapes"]


def test_a_bidirectionals_model_json_posted_back_keeps_its_directions_apart(
    client: TestClient,
) -> None:
    spec = {
        "input_shape": [5, 3],
        "seed": 4,
        "layers": [
            {
                "type": "bidirectional",
                "layer": {"type": "lstm", "units": 4, "return_sequences": True},
            },
            {"type": "bidirectional", "layer": {"type": "gru", "units": 2, "reset_after": False}},
        ],
    }
    model = post(client, spec)
    served = client.get(model["links"]["model_json"]).json()
    inner = served["modelTopology"]["config"]["layers"][0]["config"]["layer"]["config"]
    # TF.js builds both directions from this one config: a seed there would draw them equal
    assert inner["kernel_initializer"]["config"]["seed"] is None
    for seed in (4, 5):
        again = post(client, {"topology": served, "seed": seed})
        npz = np.load(io.BytesIO(client.get(again["links"]["npz"]).content))
        for layer, rnn in (("bidirectional", "lstm"), ("bidirectional_1", "gru")):
            for weight in ("kernel", "recurrent_kernel"):
                forward = npz[f"{layer}/forward_{rnn}/{weight}"]
                assert forward.tobytes() != npz[f"{layer}/backward_{rnn}/{weight}"].tobytes()
    # with the model's own seed the weights are the served ones, byte for byte
    same = post(client, {"topology": served, "seed": 4})
    weights_bin = client.get(model["links"]["weights_bin"]).content
    assert client.get(same["links"]["weights_bin"]).content == weights_bin


def test_a_keras_topology_posts_as_text_and_keeps_its_name(client: TestClient) -> None:
    text = (FIXTURES / "keras3_branches.json").read_text()
    model = post(client, {"topology": text, "seed": 3})
    assert model["spec"]["name"] == "branches"
    assert client.get(model["links"]["self"]).json() == model
    doc = client.get(model["links"]["model_json"]).json()["modelTopology"]
    assert doc["config"]["name"] == "branches"
    assert post(client, {"topology": json.loads(text), "seed": 3})["id"] == model["id"]


def test_model_json_of_a_subtract_is_a_clear_4xx(client: TestClient) -> None:
    body = {
        "inputs": [{"name": "a", "shape": [3]}, {"name": "b", "shape": [3]}],
        "layers": [{"type": "subtract", "inbound": ["a", "b"]}],
        "seed": 1,
    }
    model = post(client, body)
    resp = client.get(model["links"]["model_json"])
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("layers[0].type: TF.js 4.22 has no Subtract layer")
    assert client.get(model["links"]["weights_bin"]).status_code == 200


def _bad_topology() -> dict[str, Any]:
    topo = json.loads((FIXTURES / "keras3_sequential.json").read_text())
    topo["config"]["layers"][3]["config"]["units"] = "four"
    return topo


@pytest.mark.parametrize(
    ("body", "loc", "detail"),
    [
        (
            {**GRAPH, "layers": [*GRAPH["layers"][:5], {**GRAPH["layers"][5], "inbound": ["z"]}]},
            ["body", "layers", 5, "inbound", 0],
            "layers[5].inbound[0]: names no layer or input",
        ),
        (
            {**GRAPH, "outputs": ["out"]},
            ["body", "layers", 5],
            "layers[5]: layer 'aux' reaches no output",
        ),
        (
            {**GRAPH, "layers": [{**GRAPH["layers"][0], "inbound": ["out"]}, *GRAPH["layers"][1:]]},
            ["body", "layers", 0, "inbound"],
            "layers[0].inbound: closes a cycle",
        ),
        (
            {"topology": _bad_topology()},
            ["body", "topology", "config", "layers", 3, "config", "units"],
            "topology.config.layers[3].config.units: must be an integer",
        ),
        ({"topology": "{"}, ["body", "topology"], "topology: malformed JSON"),
    ],
)
def test_graph_and_topology_refusals_name_the_path(
    client: TestClient, body: dict[str, Any], loc: list[Any], detail: str
) -> None:
    resp = client.post("/v1/models", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["detail"].startswith(detail), problem["detail"]
    assert problem["errors"][0]["loc"] == loc


def test_depth_and_topology_size_come_from_the_settings(
    make_client: Callable[..., TestClient],
) -> None:
    small = make_client(max_model_depth=3, max_topology_bytes=4096)
    deep = small.post("/v1/models", json=GRAPH)  # img-conv2d-flatten-concatenate-out: 4
    assert deep.status_code == 413, deep.text
    assert deep.json()["detail"] == "layers: graph depth 4 > the limit of 3 layers"
    text = (FIXTURES / "keras3_two_in_two_out.json").read_text()
    assert len(text) > 4096
    big = small.post("/v1/models", json={"topology": text})
    assert big.status_code == 413 and big.json()["errors"][0]["loc"] == ["body", "topology"]
