"""Keras / TF.js topologies → the layer-list spec: the forms read (Keras 3, Keras 2, TF.js,
Sequential and functional, text or object, a whole model.json), what is carried, dropped and
refused, the limits, and every refusal naming the topology's own path."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from app.initializers.schemes._common import TRUNCATED_STD
from app.models import (
    ModelSpecError,
    ModelTooLargeError,
    ModelUnsupportedError,
    iter_weights,
    model_json,
    plan_model,
)
from tests.models.test_models_spec import LIMITS

LIMITS = dataclasses.replace(LIMITS, max_depth=64, max_topology_bytes=64 * 1024)


def glorot() -> dict[str, Any]:
    return {"module": "keras.initializers", "class_name": "GlorotUniform",
            "config": {"seed": None}, "registered_name": None}  # fmt: skip


def k3_dense(name: str, units: int, **extra: Any) -> dict[str, Any]:
    config = {
        "name": name,
        "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy",
                  "config": {"name": "float32"}, "registered_name": None},
        "units": units,
        "activation": "linear",
        "use_bias": True,
        "kernel_initializer": glorot(),
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
        "quantization_config": None,
        **extra,
    }  # fmt: skip
    return {"module": "keras.layers", "class_name": "Dense", "config": config,
            "registered_name": None, "build_config": {"input_shape": [None, 4]}}  # fmt: skip


def k3_sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    inp = {"module": "keras.layers", "class_name": "InputLayer",
           "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False,
                      "ragged": False, "name": "input_layer", "optional": False}}  # fmt: skip
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "seq", "trainable": True, "layers": [inp, *layers]},
            "build_config": {"input_shape": [None, 4]}, "compile_config": {}}  # fmt: skip


def k3_node(*names: str) -> list[dict[str, Any]]:
    tensors = [{"class_name": "__keras_tensor__",
                "config": {"shape": [None, 4], "dtype": "float32", "keras_history": [n, 0, 0]}}
               for n in names]  # fmt: skip
    return [{"args": tensors if len(tensors) == 1 else [tensors], "kwargs": {}}]


def plan(topology: Any, **extra: Any) -> Any:
    return plan_model({"topology": topology, "seed": 2, **extra}, LIMITS)


def refused(topology: Any, **extra: Any) -> ModelSpecError:
    with pytest.raises(ModelSpecError) as err:
        plan(topology, **extra)
    return err.value


def test_keras3_sequential_is_the_equivalent_layer_list() -> None:
    p = plan(k3_sequential(k3_dense("d1", 3), k3_dense("d2", 2)))
    assert p.spec["name"] == "seq" and p.spec["input_shape"] == [4]
    listed = plan_model(
        {"input_shape": [4], "seed": 2,
         "layers": [{"type": "dense", "name": "d1", "units": 3},
                    {"type": "dense", "name": "d2", "units": 2}]},
        LIMITS,
    )  # fmt: skip
    assert {k: v for k, v in p.spec.items() if k != "name"} == listed.spec
    assert [(w.name, w.shape) for w in p.weights] == [(w.name, w.shape) for w in listed.weights]
    assert b"".join(iter_weights(p)) == b"".join(iter_weights(listed))
    doc = model_json(p, ["weights.bin"])["modelTopology"]
    assert doc["class_name"] == "Sequential" and doc["config"]["name"] == "seq"


def test_text_object_and_model_json_artifact_are_one_model() -> None:
    topo = k3_sequential(k3_dense("d", 3))
    ids = {
        plan(topo).id,
        plan(json.dumps(topo)).id,
        plan({"format": "layers-model", "modelTopology": topo}).id,
        plan({"modelTopology": {"model_config": topo}}).id,
    }
    assert len(ids) == 1


def test_keras2_functional_and_old_sequential() -> None:
    k2_init = {"class_name": "GlorotUniform", "config": {"seed": None, "dtype": "float32"}}
    functional = {
        "class_name": "Model",
        "config": {
            "name": "m",
            "layers": [
                {"name": "in", "class_name": "InputLayer", "inbound_nodes": [],
                 "config": {"batch_input_shape": [None, 5], "dtype": "float32", "name": "in"}},
                {"name": "d", "class_name": "Dense", "inbound_nodes": [[["in", 0, 0, {}]]],
                 "config": {"name": "d", "units": 2, "kernel_initializer": k2_init}},
                {"name": "sum", "class_name": "Add",
                 "inbound_nodes": [[["d", 0, 0, {}], ["d", 0, 0, {}]]], "config": {"name": "sum"}},
            ],
            "input_layers": [["in", 0, 0]],
            "output_layers": [["sum", 0, 0]],
        },
        "keras_version": "2.2.4-tf",
    }  # fmt: skip
    p = plan(functional)
    assert [w.name for w in p.weights] == ["d/kernel", "d/bias"]
    assert p.layers[1].inbound == ("d", "d")
    old = {"class_name": "Sequential", "config": [
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "batch_input_shape": [None, 3]}}
    ]}  # fmt: skip
    assert plan(old).spec["input_shape"] == [3]


def test_keras3_sequential_without_input_layer_reads_build_input_shape() -> None:
    topo = k3_sequential(k3_dense("d", 3))
    topo["config"]["layers"].pop(0)
    topo["config"]["build_input_shape"] = [None, 7]
    assert plan(topo).layers[0].input_shape == (7,)
    del topo["config"]["build_input_shape"]
    err = refused(topo)
    assert err.field == "topology.config.layers[0].config.batch_input_shape"
    assert "missing input shape" in err.msg


def test_tfjs_topologies_mean_what_tfjs_means() -> None:
    normal = {
        "class_name": "VarianceScaling",
        "config": {"scale": 1, "mode": "fan_avg", "distribution": "normal", "seed": None},
    }
    he = {
        "class_name": "VarianceScaling",
        "config": {"scale": 2, "mode": "fan_in", "distribution": "normal", "seed": None},
    }
    topo = {"class_name": "Sequential", "keras_version": "tfjs-layers 4.22.0", "config": {
        "name": "s", "layers": [
            {"class_name": "LSTM", "config": {
                "name": "l", "units": 2, "batch_input_shape": [None, 3, 4],
                "unit_forget_bias": None, "kernel_initializer": normal,
                "recurrent_activation": "hard_sigmoid"}},
            {"class_name": "Dense", "config": {"name": "d", "units": 2, "kernel_initializer": he}},
        ]}}  # fmt: skip
    p = plan(topo)
    assert p.spec["defaults"] == "tfjs"
    lstm, dense = p.spec["layers"]
    assert lstm["unit_forget_bias"] is False and "reset_after" not in lstm
    # TF.js's glorotNormal: its default, a 2-std truncated normal of std sqrt(2 / fans)
    assert lstm["kernel_initializer"]["class_name"] == "TruncatedNormal"
    assert lstm["kernel_initializer"]["config"]["stddev"] == pytest.approx((2 / 12) ** 0.5)
    # heNormal the TF.js way: Keras's truncated_normal divides by 0.8796, the scale makes up
    config = dense["kernel_initializer"]["config"]
    assert config["distribution"] == "truncated_normal"
    assert config["scale"] == pytest.approx(2 * TRUNCATED_STD**2)


def test_carried_fields_reach_model_json_in_tfjs_form() -> None:
    l2 = {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.02}}
    maxnorm = {"class_name": "MaxNorm", "config": {"max_value": 3, "axis": 0}}
    p = plan(k3_sequential(
        k3_dense("d", 3, trainable=False, kernel_regularizer=l2, bias_constraint=maxnorm)
    ))  # fmt: skip
    config = p.spec["layers"][0]
    assert config["trainable"] is False
    assert config["kernel_regularizer"] == {"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.02}}
    assert config["bias_constraint"] == {"class_name": "MaxNorm",
                                         "config": {"max_value": 3.0, "axis": 0}}  # fmt: skip
    assert "bias_regularizer" not in config  # null: nothing to carry
    written = model_json(p, ["weights.bin"])["modelTopology"]["config"]["layers"][0]["config"]
    assert written["trainable"] is False
    assert written["kernel_regularizer"]["class_name"] == "L1L2"


def test_carried_fields_in_the_layer_list_too() -> None:
    body = {"input_shape": [5, 3], "seed": 1, "layers": [
        {"type": "lstm", "units": 2, "dropout": 0.25, "recurrent_dropout": 0.0,
         "go_backwards": True, "stateful": False}]}  # fmt: skip
    config = plan_model(body, LIMITS).spec["layers"][0]
    assert config["dropout"] == 0.25 and config["go_backwards"] is True
    assert "recurrent_dropout" not in config and "stateful" not in config
    body["layers"][0]["stateful"] = True
    with pytest.raises(ModelSpecError) as err:
        plan_model(body, LIMITS)
    assert err.value.field == "layers[0].stateful"


def test_refusals_name_the_topology_path() -> None:
    cases: list[tuple[Any, str, str]] = [
        ("{not json", "topology", "malformed JSON"),
        ({"class_name": "Sequentia"}, "topology.class_name", "model topology"),
        (k3_sequential({"class_name": "Dense2", "config": {}}),
         "topology.config.layers[1].class_name", "supported: dense"),
        (k3_sequential(k3_dense("d", 0)), "topology.config.layers[1].config.units", ">= 1"),
        (k3_sequential(k3_dense("d", 2, kernel_initializer="nope")),
         "topology.config.layers[1].config.kernel_initializer", "name"),
        (k3_sequential(k3_dense("d", 2, dtype="float16")),
         "topology.config.layers[1].config.dtype", "float32"),
        (k3_sequential(k3_dense("d", 2, lora_rank=4)),
         "topology.config.layers[1].config.lora_rank", "not a field"),
        ({"modelTopology": k3_sequential(k3_dense("d", 0))},
         "topology.modelTopology.config.layers[1].config.units", ">= 1"),
    ]  # fmt: skip
    for topology, field, says in cases:
        err = refused(topology)
        assert err.field == field, (field, err)
        assert says in err.msg
    err = refused(k3_sequential(k3_dense("d", 2)), input_shape=[3])
    assert err.field == "input_shape" and "with a topology" in err.msg


def _functional(dense_nodes: Any, outputs: Any = None) -> dict[str, Any]:
    inp = {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
           "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "x"}}  # fmt: skip
    dense = {**k3_dense("d", 2), "name": "d", "inbound_nodes": dense_nodes}
    return {"class_name": "Functional", "config": {
        "name": "f", "layers": [inp, dense], "input_layers": ["x", 0, 0],
        "output_layers": outputs or ["d", 0, 0]}}  # fmt: skip


def test_functional_refusals() -> None:
    assert plan(_functional(k3_node("x"))).spec["inputs"] == [{"name": "x", "shape": [4]}]
    # what Keras 3 writes for a dropout layer's call (its default): no argument
    quiet = _functional([{"args": k3_node("x")[0]["args"], "kwargs": {"training": False}}])
    assert plan(quiet).spec == plan(_functional(k3_node("x"))).spec
    at = "topology.config.layers[1].inbound_nodes"
    cases: list[tuple[Any, str, str]] = [
        (_functional(k3_node("x") * 2), at, "shared layer"),
        (_functional([[["x", 1, 0, {}]]]), f"{at}[0][0]", "second time"),
        (_functional([[["x", 0, 1, {}]]]), f"{at}[0][0]", "several outputs"),
        (_functional([[["x", 0, 0, {"training": True}]]]), f"{at}[0][0][3]", "call arguments"),
        (_functional([{"args": k3_node("x")[0]["args"], "kwargs": {"mask": 1}}]),
         f"{at}[0].kwargs", "call arguments"),
        # training: true in a call runs the layer as in training (Monte Carlo dropout)
        (_functional([{"args": k3_node("x")[0]["args"], "kwargs": {"training": True}}]),
         f"{at}[0].kwargs", "call arguments"),
        # only JSON false is Keras's default: 0 (equal to False in Python) is not it
        (_functional([{"args": k3_node("x")[0]["args"], "kwargs": {"training": 0}}]),
         f"{at}[0].kwargs", "call arguments"),
        (_functional(k3_node("y")), f"{at}[0]", "names no layer"),
        (_functional(k3_node("x"), ["e", 0, 0]), "topology.config.output_layers[0]", "names no"),
    ]  # fmt: skip
    for topology, field, says in cases:
        err = refused(topology)
        assert err.field == field, (field, err)
        assert says in err.msg
    bad_input = _functional(k3_node("x"))
    bad_input["config"]["input_layers"] = ["d", 0, 0]
    assert refused(bad_input).field == "topology.config.input_layers[0]"


def test_limits_before_parsing() -> None:
    big = "[" * (LIMITS.max_topology_bytes + 1)  # never parsed: 413, not malformed JSON
    with pytest.raises(ModelTooLargeError) as err:
        plan(big)
    assert err.value.field == "topology"
    many = k3_sequential(*[k3_dense(f"d{i}", 4) for i in range(LIMITS.max_layers + 1)])
    with pytest.raises(ModelTooLargeError) as err:
        plan_model({"topology": many}, dataclasses.replace(LIMITS, max_topology_bytes=None))
    assert err.value.field == "topology.config.layers"


def test_model_level_fields() -> None:
    frozen = k3_sequential(k3_dense("d", 3))
    frozen["config"]["trainable"] = False  # Keras: model.trainable = False freezes every layer
    assert plan(frozen).spec["layers"][0]["trainable"] is False
    half = k3_sequential(k3_dense("d", 3))
    half["config"]["dtype"] = {"class_name": "DTypePolicy", "config": {"name": "float16"}}
    err = refused(half)
    assert err.field == "topology.config.dtype" and "float32" in err.msg


def test_input_dtypes_and_list_axes() -> None:
    topo = k3_sequential(
        {"class_name": "Embedding", "config": {"name": "e", "input_dim": 9, "output_dim": 4}},
        {"class_name": "LayerNormalization", "config": {"name": "n", "axis": [-1]}},
    )
    topo["config"]["layers"][0]["config"]["dtype"] = "int32"
    p = plan(topo)
    assert p.spec["inputs"] == [{"name": "input_layer", "shape": [4], "dtype": "int32"}]
    assert p.spec["layers"][1]["axis"] == -1
    topo["config"]["layers"][0]["config"]["dtype"] = "string"
    assert refused(topo).field == "topology.config.layers[0].config.dtype"


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        out += _paths(value, (*at, key))
    return out


JUNK: list[Any] = [None, [], {}, "x", -1, 1.5, True, [[1, 2]], {"config": 1}, {"class_name": []}]


@pytest.mark.parametrize(
    "name",
    [
        "keras3_two_in_two_out",
        "keras3_sequential",
        "keras3_token_ids",
        "keras3_noise_unused",
        "keras2_functional",
    ],
)
def test_any_mangled_topology_is_a_field_error_never_a_crash(name: str) -> None:
    import copy
    import random
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[1] / "conformance" / "tfjs" / "fixtures"
    doc = json.loads((fixtures / f"{name}.json").read_text())
    rng = random.Random(name)
    paths = _paths(doc)[1:]
    refused_count = 0
    for path in rng.sample(paths, min(400, len(paths))):
        mangled = copy.deepcopy(doc)
        parent = mangled
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = rng.choice(JUNK)
        try:
            plan_model({"topology": mangled, "seed": 1}, LIMITS)
        except ModelSpecError as exc:
            assert exc.field.split(".")[0] in ("topology", "name"), exc.field
            refused_count += 1
    assert refused_count > 100


def test_dropout_seeds_and_noise_shapes_reach_model_json_as_tfjs_reads_them() -> None:
    body = {"input_shape": [6, 4], "seed": 1, "layers": [
        {"type": "dropout", "rate": 0.2, "noise_shape": [None, 1, 4], "seed": 7},
        {"type": "spatial_dropout1d", "rate": 0.2, "seed": 8},
        {"type": "gaussian_noise", "stddev": 0.1, "seed": 9},
        {"type": "alpha_dropout", "rate": 0.1, "noise_shape": [2, 6, 1], "seed": 10},
        {"type": "dropout", "rate": 0.2, "noise_shape": None, "seed": None}]}  # fmt: skip
    p = plan_model(body, LIMITS)
    assert p.spec["layers"][0]["noise_shape"] == [None, 1, 4]
    assert [c.get("seed") for c in p.spec["layers"]] == [7, 8, 9, 10, None]
    assert "noise_shape" not in p.spec["layers"][4]  # null: the default, not carried
    written = [
        layer["config"]
        for layer in model_json(p, ["weights.bin"])["modelTopology"]["config"]["layers"]
    ]
    assert (written[0]["noise_shape"], written[0]["seed"], written[1]["seed"]) == (
        [None, 1, 4], 7, 8)  # fmt: skip
    # TF.js's GaussianNoise and AlphaDropout take no seed
    assert "seed" not in written[2] and "seed" not in written[3]
    assert written[3]["noise_shape"] == [2, 6, 1]
    # its AlphaDropout draws the mask in noise_shape as given: null is no size
    body["layers"][3]["noise_shape"] = [None, 6, 1]
    with pytest.raises(ModelUnsupportedError) as err:
        model_json(plan_model(body, LIMITS), ["weights.bin"])
    assert err.value.field == "layers[3].noise_shape"


def test_causal_conv1d_plans_and_model_json_refuses_it() -> None:
    conv = {"type": "conv1d", "filters": 3, "kernel_size": 3, "strides": 3, "padding": "causal"}
    body = {"input_shape": [10, 4], "seed": 1, "layers": [conv]}
    p = plan_model(body, LIMITS)
    assert p.layers[0].output_shape == (4, 3)
    assert p.spec["layers"][0]["padding"] == "causal"
    with pytest.raises(ModelUnsupportedError) as err:
        model_json(p, ["weights.bin"])
    assert err.value.field == "layers[0].padding" and "causal" in err.value.msg
