"""Functional graphs in the layer-list spec: inputs, inbound, outputs, Keras's layer order,
the canonical form, refusals naming the field, the depth limit, and the TF.js Functional."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from app.models import ModelSpecError, ModelTooLargeError, model_json, plan_model
from tests.models.test_models_spec import LIMITS


def dense(name: str, units: int, *inbound: str) -> dict[str, Any]:
    layer: dict[str, Any] = {"type": "dense", "name": name, "units": units}
    if inbound:
        layer["inbound"] = list(inbound)
    return layer


# x -> a, b; sum = a + b; cat = [sum, x]; out1 <- cat, out2 <- sum
# (Keras orders them a, b, sum, cat, out1, out2)
GRAPH: dict[str, Any] = {
    "inputs": [{"name": "x", "shape": [4]}],
    "layers": [
        dense("a", 3, "x"),
        dense("b", 3, "x"),
        {"type": "add", "name": "sum", "inbound": ["a", "b"]},
        {"type": "concatenate", "name": "cat", "inbound": ["sum", "x"]},
        dense("out1", 2, "cat"),
        dense("out2", 1, "sum"),
    ],
    "outputs": ["out1", "out2"],
    "seed": 3,
}


def plan(body: dict[str, Any], **limits: Any) -> Any:
    return plan_model(body, dataclasses.replace(LIMITS, **limits))


def test_a_graph_plans_shapes_weights_and_its_canonical_form() -> None:
    p = plan(GRAPH)
    assert [layer.name for layer in p.layers] == ["a", "b", "sum", "cat", "out1", "out2"]
    assert [layer.output_shape for layer in p.layers] == [(3,), (3,), (3,), (7,), (2,), (1,)]
    assert [(w.name, w.shape) for w in p.weights][4:6] == [
        ("out1/kernel", (7, 2)),
        ("out1/bias", (2,)),
    ]
    assert p.spec["inputs"] == [{"name": "x", "shape": [4]}]
    assert p.spec["outputs"] == ["out1", "out2"]
    assert [c["inbound"] for c in p.spec["layers"]] == [
        ["x"],
        ["x"],
        ["a", "b"],
        ["sum", "x"],
        ["cat"],
        ["sum"],
    ]
    assert p.spec["layers"][3]["axis"] == -1
    again = plan({**p.spec, "seed": 3})
    assert again.spec == p.spec and again.id == p.id


def test_keras_order_whatever_the_posted_order() -> None:
    shuffled = {**GRAPH, "layers": [GRAPH["layers"][i] for i in (5, 3, 0, 4, 2, 1)]}
    assert plan(shuffled).spec == plan(GRAPH).spec
    assert plan(shuffled).id == plan(GRAPH).id


def test_defaults_previous_layer_single_input_last_output() -> None:
    body = {
        "inputs": [{"name": "img", "shape": [4]}],
        "layers": [dense("h", 3), dense("o", 2)],
        "seed": 1,
    }
    p = plan(body)
    assert [layer.inbound for layer in p.layers] == [("img",), ("h",)]
    assert p.outputs == ("o",) and p.sequential
    # an "inputs" spec keeps its graph form (the input's name) even as a chain
    assert p.spec["layers"][0]["inbound"] == ["img"]


def test_the_sequential_form_stays_as_it_was() -> None:
    body = {"input_shape": [4], "layers": [dense("h", 3), dense("o", 2)], "seed": 1}
    p = plan(body)
    assert set(p.spec) == {"input_shape", "defaults", "layers"}
    assert all("inbound" not in c for c in p.spec["layers"])
    # inbound given explicitly along the chain: the same canonical spec
    explicit = {**body, "layers": [dense("h", 3, "input_layer"), dense("o", 2, "h")]}
    assert plan(explicit).spec == p.spec
    # a branch with input_shape: the graph form, the input named as Keras names it
    branch = {**body, "layers": [dense("h", 3), dense("o", 2, "h", "h")]}
    with pytest.raises(ModelSpecError, match="exactly one input"):
        plan(branch)


def test_two_inputs_need_inbound_and_merge() -> None:
    body = {
        "inputs": [{"name": "a", "shape": [2, 3]}, {"name": "b", "shape": [None, 3]}],
        "layers": [{"type": "concatenate", "axis": 1, "inbound": ["a", "b"]}, dense("d", 4)],
        "seed": 1,
    }
    p = plan(body)
    assert p.layers[0].name == "concatenate"
    assert p.layers[0].output_shape == (None, 3)
    assert p.layers[1].output_shape == (None, 4)
    assert not p.sequential
    with pytest.raises(ModelSpecError) as err:
        plan({**body, "layers": [dense("e", 4), *body["layers"]]})
    assert err.value.field == "layers[0].inbound" and "several inputs" in err.value.msg


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        (
            {"layers": [dense("a", 2, "x"), dense("b", 2, "nope")]},
            "layers[1].inbound[0]",
            "names no",
        ),
        ({"layers": [dense("a", 2, "b"), dense("b", 2, "a")]}, "layers[", "cycle"),
        ({"layers": [dense("a", 2, "a")]}, "layers[0].inbound", "cycle"),
        (
            {"layers": [dense("a", 2, "x"), dense("b", 2, "x")], "outputs": ["a"]},
            "layers[1]",
            "reaches no output",
        ),
        ({"outputs": ["out1", "zz"]}, "outputs[1]", "names no layer"),
        ({"outputs": ["x"]}, "outputs[0]", "is an input"),
        ({"outputs": ["out1", "out1"]}, "outputs", "twice"),
        ({"outputs": []}, "outputs", "non-empty"),
        ({"inputs": [{"name": "a", "shape": [4]}]}, "inputs[0].name", "names a layer"),
        ({"inputs": [{"name": "x", "shape": [0]}]}, "inputs[0].shape", "integers >= 1"),
        ({"inputs": [{"name": "x", "shape": [4], "dtype": "int8"}]}, "inputs[0].dtype", "int32"),
        ({"inputs": [{"name": "x", "shape": [4], "type": "a"}]}, "inputs[0]", "{name?, shape"),
        ({"inputs": []}, "input_shape", "required"),
        ({"input_shape": [4]}, "inputs", "not both"),
        ({"layers": [{"type": "InputLayer", "name": "i"}]}, "layers[0].type", "graph inputs go"),
        ({"layers": [{"type": "dense", "units": 2, "inbound": "x"}]}, "layers[0].inbound", "list"),
        (
            {"layers": [dense("s", 2, "x"), {"type": "subtract", "inbound": ["s", "s", "s"]}]},
            "layers[1].type",
            "exactly 2",
        ),
    ],
)
def test_graph_refusals_name_the_field(change: dict[str, Any], field: str, says: str) -> None:
    body = {**GRAPH, **change}
    if "layers" in change and "outputs" not in change:
        body.pop("outputs")
    with pytest.raises(ModelSpecError) as err:
        plan(body)
    assert err.value.field.startswith(field), err.value
    assert says in err.value.msg
    assert not isinstance(err.value, ModelTooLargeError)


def test_the_depth_limit() -> None:
    assert plan(GRAPH, max_depth=4).layers  # x-a-sum-cat-out1: 4 layers deep
    with pytest.raises(ModelTooLargeError) as err:
        plan(GRAPH, max_depth=3)
    assert err.value.field == "layers" and err.value.value == 4


def test_model_json_is_a_keras2_functional() -> None:
    doc = model_json(plan({**GRAPH, "name": "net"}), ["a.bin", "b.bin"])
    topo = doc["modelTopology"]
    assert topo["class_name"] == "Functional"
    config = topo["config"]
    assert config["name"] == "net"
    assert config["input_layers"] == [["x", 0, 0]]
    assert config["output_layers"] == [["out1", 0, 0], ["out2", 0, 0]]
    first, *rest = config["layers"]
    assert first == {
        "class_name": "InputLayer",
        "config": {
            "batch_input_shape": [None, 4],
            "dtype": "float32",
            "sparse": False,
            "name": "x",
        },
        "name": "x",
        "inbound_nodes": [],
    }
    cat = next(x for x in rest if x["name"] == "cat")
    assert cat["class_name"] == "Concatenate"
    assert cat["inbound_nodes"] == [[["sum", 0, 0, {}], ["x", 0, 0, {}]]]
    assert "inbound" not in cat["config"] and cat["config"]["axis"] == -1
    assert doc["weightsManifest"][0]["paths"] == ["a.bin", "b.bin"]


def test_model_json_refuses_what_tfjs_cannot_merge() -> None:
    from app.models import ModelUnsupportedError

    body = {
        "inputs": [{"name": "a", "shape": [3]}, {"name": "b", "shape": [3]}],
        "layers": [{"type": "subtract", "name": "s", "inbound": ["a", "b"]}],
        "seed": 1,
    }
    with pytest.raises(ModelUnsupportedError) as err:
        model_json(plan(body), ["weights.bin"])
    assert err.value.field == "layers[0].type" and "Subtract" in err.value.msg
    single = {**body, "layers": [{"type": "add", "inbound": ["a"]}], "inputs": body["inputs"][:1]}
    with pytest.raises(ModelUnsupportedError) as err:
        model_json(plan(single), ["weights.bin"])
    assert err.value.field == "layers[0].inbound"
    dot = {
        "inputs": [{"name": "a", "shape": [2, 3, 4]}, {"name": "b", "shape": [2, 3, 4]}],
        "layers": [{"type": "dot", "axes": -1, "inbound": ["a", "b"]}],
        "seed": 1,
    }
    assert plan(dot).layers[0].output_shape == (2, 3, 2, 3)
    with pytest.raises(ModelUnsupportedError, match="rank 3"):
        model_json(plan(dot), ["weights.bin"])


def test_an_int32_input_is_kept_and_written_on_its_input_layer() -> None:
    body = {
        "inputs": [{"name": "ids", "shape": [None], "dtype": "int32"}],
        "layers": [{"type": "embedding", "input_dim": 10, "output_dim": 4}, dense("d", 2)],
        "seed": 1,
    }
    p = plan(body)
    assert p.spec["inputs"] == [{"name": "ids", "shape": [None], "dtype": "int32"}]
    assert not p.sequential  # a Sequential cannot carry its input's dtype
    (first, *_) = model_json(p, ["weights.bin"])["modelTopology"]["config"]["layers"]
    assert first["class_name"] == "InputLayer" and first["config"]["dtype"] == "int32"
    floats = plan({**body, "inputs": [{"name": "ids", "shape": [None]}]})
    assert "dtype" not in floats.spec["inputs"][0] and floats.sequential


def test_an_input_that_reaches_no_output_stays_a_model_input() -> None:
    # keras.Model([x, y], f(x)) is a model of two inputs (so is TF.js's); y has no layers
    body = {**GRAPH, "inputs": [*GRAPH["inputs"], {"name": "y", "shape": [2]}]}
    p = plan(body)
    assert [layer.name for layer in p.layers] == [layer.name for layer in plan(GRAPH).layers]
    assert p.spec["inputs"] == [{"name": "x", "shape": [4]}, {"name": "y", "shape": [2]}]
    assert p.id != plan(GRAPH).id
    config = model_json(p, ["weights.bin"])["modelTopology"]["config"]
    assert config["input_layers"] == [["x", 0, 0], ["y", 0, 0]]
    assert [entry["name"] for entry in config["layers"]][:2] == ["x", "y"]
