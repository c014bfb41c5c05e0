"""The layer-list model spec: shapes, names, order, defaults, seeds, ids, limits, refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.initializers import generate, resolve
from app.models import (
    LAYER_TYPES,
    Limits,
    ModelSpecError,
    ModelTooLargeError,
    ModelUnsupportedError,
    iter_weights,
    model_json,
    plan_model,
    weight_seed,
    weight_values,
)

LIMITS = Limits(
    max_params=50_000_000,
    max_layers=256,
    max_weight_elements=16_777_216,
    max_orthogonal_work=2048**3,
    max_rank=8,
)
ROOT = Path(__file__).resolve().parents[2]


def plan(input_shape: list[int], *layers: dict[str, Any], **extra: Any) -> Any:
    return plan_model(
        {"input_shape": input_shape, "layers": list(layers), "seed": 1, **extra}, LIMITS
    )


def shapes(p: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(w.name, w.shape) for w in p.weights]


@pytest.mark.parametrize(
    ("input_shape", "layer", "out", "weights"),
    [
        (
            [784],
            {"type": "dense", "units": 256},
            (256,),
            [("kernel", (784, 256)), ("bias", (256,))],
        ),
        ([7, 5], {"type": "Dense", "units": 3, "use_bias": False}, (7, 3), [("kernel", (5, 3))]),
        (
            [28, 28, 3],
            {"type": "conv2d", "filters": 8, "kernel_size": 3},
            (26, 26, 8),
            [("kernel", (3, 3, 3, 8)), ("bias", (8,))],
        ),
        (
            [28, 28, 4],
            {
                "type": "conv2d",
                "filters": 8,
                "kernel_size": [5, 3],
                "strides": 2,
                "padding": "same",
            },
            (14, 14, 8),
            [("kernel", (5, 3, 4, 8)), ("bias", (8,))],
        ),
        (
            [3, 32, 32],
            {"type": "conv2d", "filters": 6, "kernel_size": 5, "data_format": "channels_first"},
            (6, 28, 28),
            [("kernel", (5, 5, 3, 6)), ("bias", (6,))],
        ),
        (
            [100, 4],
            {"type": "conv1d", "filters": 6, "kernel_size": 3, "dilation_rate": 2, "groups": 2},
            (96, 6),
            [("kernel", (3, 2, 6)), ("bias", (6,))],
        ),
        ([4, 5, 6], {"type": "flatten"}, (120,), []),
        ([10], {"type": "dropout", "rate": 0.2}, (10,), []),
        ([10], {"type": "activation", "activation": "tanh"}, (10,), []),
        (
            [12],
            {"type": "embedding", "input_dim": 1000, "output_dim": 16},
            (12, 16),
            [("embeddings", (1000, 16))],
        ),
        (
            [20, 64],
            {"type": "lstm", "units": 32},
            (32,),
            [("kernel", (64, 128)), ("recurrent_kernel", (32, 128)), ("bias", (128,))],
        ),
        (
            [20, 64],
            {"type": "gru", "units": 32, "return_sequences": True},
            (20, 32),
            [("kernel", (64, 96)), ("recurrent_kernel", (32, 96)), ("bias", (2, 96))],
        ),
        (
            [20, 64],
            {"type": "gru", "units": 32, "reset_after": False},
            (32,),
            [("kernel", (64, 96)), ("recurrent_kernel", (32, 96)), ("bias", (96,))],
        ),
        (
            [20, 64],
            {"type": "simple_rnn", "units": 16},
            (16,),
            [("kernel", (64, 16)), ("recurrent_kernel", (16, 16)), ("bias", (16,))],
        ),
        (
            [8, 8, 3],
            {"type": "batch_normalization"},
            (8, 8, 3),
            [("gamma", (3,)), ("beta", (3,)), ("moving_mean", (3,)), ("moving_variance", (3,))],
        ),
        (
            [8, 5],
            {"type": "batch_normalization", "axis": 1, "center": False},
            (8, 5),
            [("gamma", (8,)), ("moving_mean", (8,)), ("moving_variance", (8,))],
        ),
        ([8, 5], {"type": "layer_normalization"}, (8, 5), [("gamma", (5,)), ("beta", (5,))]),
    ],
)
def test_shapes_and_weight_order_per_layer_type(
    input_shape: list[int], layer: dict[str, Any], out: tuple[int, ...], weights: list[Any]
) -> None:
    p = plan(input_shape, layer)
    (only,) = p.layers
    assert only.output_shape == out
    assert [(w.name, w.shape) for w in only.weights] == [
        (f"{only.name}/{n}", s) for n, s in weights
    ]
    assert p.params == sum(int(np.prod(s)) for _, s in weights)


def test_the_first_layer_types_are_still_in_the_table() -> None:
    # every type's shapes and weights against real Keras 3: tests/models/test_layers_keras.py
    assert set(LAYER_TYPES) >= {
        "dense",
        "conv1d",
        "conv2d",
        "flatten",
        "dropout",
        "activation",
        "embedding",
        "simple_rnn",
        "lstm",
        "gru",
        "batch_normalization",
        "layer_normalization",
    }


def test_names_are_generated_the_way_keras_names_layers() -> None:
    p = plan(
        [20, 8],
        {"type": "lstm", "units": 4, "return_sequences": True},
        {"type": "dense", "units": 4},
        {"type": "dense", "units": 4, "name": "dense_1"},
        {"type": "dense", "units": 4},
        {"type": "flatten"},
        {"type": "batch_normalization"},
    )
    assert [layer.name for layer in p.layers] == [
        "lstm",
        "dense",
        "dense_1",
        "dense_2",
        "flatten",
        "batch_normalization",
    ]


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ModelSpecError) as err:
        plan(
            [4],
            {"type": "dense", "units": 2, "name": "a"},
            {"type": "dense", "units": 2, "name": "a"},
        )
    assert err.value.field == "layers[1].name"


def test_defaults_follow_keras_or_tfjs() -> None:
    layers = (
        {"type": "lstm", "units": 4},
        {"type": "dense", "units": 3},
        {"type": "embedding", "input_dim": 5, "output_dim": 2},
    )
    keras = plan_model({"input_shape": [6, 3], "layers": list(layers[:2]), "seed": 1}, LIMITS)
    tfjs = plan_model(
        {"input_shape": [6, 3], "layers": list(layers[:2]), "seed": 1, "defaults": "tfjs"}, LIMITS
    )
    k = {w.name: w.echo() for w in keras.weights}
    t = {w.name: w.echo() for w in tfjs.weights}
    assert k["lstm/kernel"]["initializer"]["class_name"] == "GlorotUniform"
    assert k["lstm/recurrent_kernel"]["initializer"]["class_name"] == "Orthogonal"
    assert k["lstm/bias"]["unit_forget_bias"] is True
    assert "unit_forget_bias" not in t["lstm/bias"]
    assert keras.spec["layers"][0]["recurrent_activation"] == "sigmoid"
    assert tfjs.spec["layers"][0]["recurrent_activation"] == "hard_sigmoid"
    # TF.js glorotNormal: truncated normal, std sqrt(2 / (fan_in + fan_out)), no correction.
    dense = t["dense/kernel"]["initializer"]
    assert dense["class_name"] == "TruncatedNormal"
    assert dense["config"]["stddev"] == pytest.approx((2 / (4 + 3)) ** 0.5)
    emb = plan([5], layers[2]).weights[0].echo()["initializer"]
    assert emb["class_name"] == "RandomUniform"
    assert (emb["config"]["minval"], emb["config"]["maxval"]) == (-0.05, 0.05)
    gru_k = plan([3, 2], {"type": "gru", "units": 2}).spec["layers"][0]
    gru_t = plan([3, 2], {"type": "gru", "units": 2}, defaults="tfjs").spec["layers"][0]
    assert (gru_k["reset_after"], gru_t["reset_after"]) == (True, False)


def test_lstm_unit_forget_bias_sets_the_forget_gate_block_to_ones() -> None:
    p = plan([5, 3], {"type": "lstm", "units": 4})
    bias = weight_values(p.weights[2])
    assert bias.tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 8


def test_each_weight_has_its_own_derived_seed_and_reproduces_from_its_echo() -> None:
    p = plan(
        [6],
        {"type": "dense", "units": 5},
        {"type": "dense", "units": 5, "kernel_initializer": "he_normal"},
    )
    for i, w in enumerate(p.weights):
        assert w.seed == weight_seed(1, i, w.name)
        echo = w.echo()["initializer"]
        again = generate(resolve(echo), w.shape, seed=resolve(echo).seed or 0, dtype="float32")
        assert again.tobytes() == weight_values(w).tobytes()
    assert p.weights[0].seed != p.weights[2].seed


def test_a_seeded_initializer_keeps_its_own_seed() -> None:
    ref = {"class_name": "GlorotUniform", "config": {"seed": 77}}
    p = plan([6], {"type": "dense", "units": 5, "kernel_initializer": ref})
    assert p.weights[0].seed == 77
    assert p.weights[0].echo()["initializer"]["config"]["seed"] == 77


def test_the_canonical_spec_plans_to_the_same_model() -> None:
    p = plan(
        [20, 8],
        {"type": "gru", "units": 4},
        {"type": "dense", "units": 2, "bias_initializer": "ones"},
    )
    again = plan_model({**p.spec, "seed": p.seed}, LIMITS)
    assert again.spec == p.spec and again.id == p.id
    assert b"".join(iter_weights(again)) == b"".join(iter_weights(p))
    assert plan_model({**p.spec, "seed": 2}, LIMITS).id != p.id


def test_the_id_is_the_same_in_another_process() -> None:
    p = plan([4], {"type": "dense", "units": 2})
    code = (
        "from app.models import Limits, plan_model;"
        "print(plan_model({'input_shape': [4], 'layers': [{'type': 'dense', 'units': 2}],"
        " 'seed': 1}, Limits(10**8, 9, 10**8, 10**9, 8)).id)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == p.id


def test_a_missing_seed_is_drawn() -> None:
    body = {"input_shape": [4], "layers": [{"type": "dense", "units": 2}]}
    assert 0 <= plan_model(body, LIMITS).seed < 2**32


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"layers": [{"type": "dense", "units": 2}]}, "input_shape", "required"),
        ({"input_shape": [0], "layers": [{"type": "dense", "units": 2}]}, "input_shape", "list"),
        (
            {
                "input_shape": [4],
                "layers": [{"type": "dense", "units": 2}] * 3 + [{"type": "dense", "units": -1}],
            },
            "layers[3].units",
            ">= 1",
        ),
        ({"input_shape": [4], "layers": [{"type": "pooling"}]}, "layers[0].type", "conv2d"),
        (
            {
                "input_shape": [28, 28],
                "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3}],
            },
            "layers[0].type",
            "rank 3",
        ),
        (
            {
                "input_shape": [4, 4, 1],
                "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 5}],
            },
            "layers[0].kernel_size",
            "spans 5",
        ),
        (
            {
                "input_shape": [4],
                "layers": [{"type": "dense", "units": 2, "kernel_initializer": "nope"}],
            },
            "layers[0].kernel_initializer",
            "name",
        ),
        (
            {"input_shape": [4], "layers": [{"type": "dense", "units": 2, "unit": 3}]},
            "layers[0].unit",
            "not a field",
        ),
        (
            {"input_shape": [4], "layers": [{"type": "dense", "units": 2, "activation": "mish"}]},
            "layers[0].activation",
            "relu",
        ),
        (
            {"input_shape": [4], "layers": [{"type": "lstm", "units": 2}]},
            "layers[0].type",
            "timesteps",
        ),
        ({"input_shape": [4], "layers": []}, "layers", "non-empty"),
        (
            {"input_shape": [4], "layers": [{"type": "dense", "units": 2}], "seed": -1},
            "seed",
            "2**32",
        ),
        (
            {"input_shape": [4], "layers": [{"type": "dense", "units": 2}], "defaults": "torch"},
            "defaults",
            "keras",
        ),
        ({"topology": {}}, "topology.class_name", "model topology"),
        (
            {"input_shape": [4, 4], "layers": [{"type": "batch_normalization", "axis": 0}]},
            "layers[0].axis",
            "batch",
        ),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ModelSpecError) as err:
        plan_model(body, LIMITS)
    assert err.value.field == field
    assert says in err.value.msg
    assert not isinstance(err.value, ModelTooLargeError)


def test_a_huge_model_is_refused_at_the_layer_that_crosses_the_limit() -> None:
    layers = [{"type": "dense", "units": 4000}] * 3 + [{"type": "dense", "units": 10**6}] * 200
    with pytest.raises(ModelTooLargeError) as err:
        plan_model({"input_shape": [4000], "layers": layers, "seed": 1}, LIMITS)
    assert err.value.field == "layers[3]" or err.value.field == "layers[4]"
    # a 10**12-parameter layer: refused by the per-weight bound, from shapes alone
    with pytest.raises(ModelTooLargeError, match="elements"):
        plan([10**6], {"type": "dense", "units": 10**6})


def test_layer_count_and_orthogonal_work_are_bounded() -> None:
    small = Limits(10**9, 2, 10**8, 64**3, 8)
    with pytest.raises(ModelTooLargeError) as err:
        plan_model({"input_shape": [4], "layers": [{"type": "dense", "units": 2}] * 3}, small)
    assert err.value.field == "layers"
    with pytest.raises(ModelTooLargeError) as err:
        plan_model({"input_shape": [3, 4], "layers": [{"type": "simple_rnn", "units": 65}]}, small)
    assert err.value.field == "layers[0].recurrent_initializer"


def test_model_json_refuses_what_tfjs_cannot_run() -> None:
    with pytest.raises(ModelUnsupportedError) as err:
        model_json(plan([3, 2], {"type": "gru", "units": 2}), ["weights.bin"])
    assert err.value.field == "layers[0].reset_after"
    with pytest.raises(ModelUnsupportedError) as err:
        model_json(
            plan([9, 4], {"type": "conv1d", "filters": 4, "kernel_size": 2, "groups": 2}),
            ["weights.bin"],
        )
    assert err.value.field == "layers[0].groups"


def test_model_json_is_a_keras2_sequential_with_one_weights_group() -> None:
    p = plan(
        [784], {"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}
    )
    doc = model_json(p, ["weights.bin"])
    assert doc["format"] == "layers-model"
    layers = doc["modelTopology"]["config"]["layers"]
    assert layers[0]["config"]["batch_input_shape"] == [None, 784]
    assert "batch_input_shape" not in layers[1]["config"]
    (group,) = doc["weightsManifest"]
    assert group["paths"] == ["weights.bin"]
    assert [w["name"] for w in group["weights"]] == [w.name for w in p.weights]


def test_model_json_writes_an_initializer_only_where_tfjs_draws_it_alike_for_that_shape() -> None:
    """TF.js refuses a rectangular Identity and counts a rank-1 weight's fans otherwise
    (sqrt of its size): those weights' initializers are left to TF.js's default in model.json;
    the square Identity and the rank-2 Glorot are written, with the weight's seed."""
    p = plan(
        [4],
        {"type": "dense", "units": 4, "kernel_initializer": "identity"},
        {"type": "dense", "units": 3, "kernel_initializer": "identity"},
        {"type": "dense", "units": 2, "bias_initializer": "glorot_uniform"},
    )
    layers = model_json(p, ["weights.bin"])["modelTopology"]["config"]["layers"]
    square, rectangular, rank1_bias = (layer["config"] for layer in layers)
    assert square["kernel_initializer"]["className"] == "Identity"
    assert "kernel_initializer" not in rectangular
    assert "bias_initializer" not in rank1_bias
    glorot = rank1_bias["kernel_initializer"]  # in TF.js's VarianceScaling form
    assert (glorot["className"], glorot["config"]["mode"]) == ("VarianceScaling", "fanAvg")
    assert glorot["config"]["seed"] == p.weights[4].seed
