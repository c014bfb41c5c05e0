"""What Keras 2 (tf.keras 2.15) and TF.js 4.22 write for fields left unset, read as they mean it:
TF.js's null flags (Embedding ``mask_zero``), the dropout family's null ``noise_shape``,
LeakyReLU's ``alpha`` (also model.json's), tf.keras 2's ``groups: 1`` on layers without groups.
TF.js's own ``toJSON()`` of every layer type is posted in tests/conformance/tfjs/topology.test.mjs.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.models import ModelSpecError, iter_weights, model_json, plan_model
from tests.models.test_topology import LIMITS, plan, refused


def tfjs_sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    """A Sequential as TF.js 4.22's ``model.toJSON()`` writes it."""
    return {
        "class_name": "Sequential",
        "keras_version": "tfjs-layers 4.22.0",
        "backend": "tensor_flow.js",
        "config": {"name": "s", "layers": list(layers)},
    }


def test_the_nulls_tfjs_writes_for_unset_fields_are_its_defaults() -> None:
    uniform = {
        "class_name": "RandomUniform",
        "config": {"minval": -0.05, "maxval": 0.05, "seed": None},
    }
    embedding = {
        "class_name": "Embedding",
        "config": {
            "input_dim": 30,
            "output_dim": 4,
            "embeddings_initializer": uniform,
            "embeddings_regularizer": None,
            "activity_regularizer": None,
            "embeddings_constraint": None,
            "mask_zero": None,
            "input_length": 6,
            "name": "e",
            "trainable": True,
            "batch_input_shape": [None, 6],
        },
    }
    dropout = {
        "class_name": "SpatialDropout1D",
        "config": {
            "rate": 0.1,
            "noise_shape": None,
            "seed": None,
            "name": "sd",
            "trainable": True,
            "dtype": "float32",
        },
    }
    p = plan(tfjs_sequential(embedding, dropout))
    # null mask_zero is TF.js's false (its computeMask masks nothing), the default: not carried
    assert "mask_zero" not in p.spec["layers"][0]
    assert p.spec["layers"][1] == {"type": "spatial_dropout1d", "name": "sd", "rate": 0.1}
    embedding["config"]["mask_zero"] = False
    del dropout["config"]["noise_shape"]
    assert plan(tfjs_sequential(embedding, dropout)).id == p.id


def test_the_whole_dropout_family_takes_a_null_noise_shape() -> None:
    family = [
        ([5, 3], {"type": "spatial_dropout1d", "rate": 0.1}),
        ([5, 5, 3], {"type": "spatial_dropout2d", "rate": 0.1}),
        ([4, 4, 4, 3], {"type": "spatial_dropout3d", "rate": 0.1}),
        ([4], {"type": "gaussian_dropout", "rate": 0.1}),
        ([4], {"type": "gaussian_noise", "stddev": 0.1}),
        ([4], {"type": "alpha_dropout", "rate": 0.1}),
        ([4], {"type": "dropout", "rate": 0.1}),
    ]
    for shape, layer in family:
        body = {"input_shape": shape, "seed": 1, "layers": [layer]}
        with_null = {**body, "layers": [{**layer, "noise_shape": None}]}
        assert plan_model(with_null, LIMITS).spec == plan_model(body, LIMITS).spec
        if layer["type"] not in ("dropout", "alpha_dropout"):  # their mask's shape is their own
            given = {**body, "layers": [{**layer, "noise_shape": [None, *shape]}]}
            with pytest.raises(ModelSpecError) as err:
                plan_model(given, LIMITS)
            assert err.value.field == "layers[0].noise_shape" and "must be null" in err.value.msg


def test_leaky_relu_takes_alpha_as_keras_2_tfjs_and_model_json_write_it() -> None:
    def body(**leaky: Any) -> dict[str, Any]:
        return {
            "input_shape": [4],
            "seed": 1,
            "layers": [{"type": "dense", "units": 3}, {"type": "leaky_re_lu", **leaky}],
        }

    p = plan_model(body(alpha=0.2), LIMITS)
    assert p.spec["layers"][1] == {
        "type": "leaky_re_lu",
        "name": "leaky_re_lu",
        "negative_slope": 0.2,
    }
    assert p.id == plan_model(body(negative_slope=0.2), LIMITS).id
    assert plan_model(body(), LIMITS).spec["layers"][1]["negative_slope"] == 0.3
    # the service's own model.json says alpha: posted back, it is the same model
    served = model_json(p, ["weights.bin"])
    assert served["modelTopology"]["config"]["layers"][1]["config"]["alpha"] == 0.2
    again = plan_model({"topology": served, "seed": 1}, LIMITS)
    assert again.spec["layers"][1] == p.spec["layers"][1]
    assert b"".join(iter_weights(again)) == b"".join(iter_weights(p))
    for leaky, says in (
        ({"alpha": -1}, "must be in"),
        ({"alpha": 0.2, "negative_slope": 0.2}, "other name"),
    ):
        with pytest.raises(ModelSpecError) as err:
            plan_model(body(**leaky), LIMITS)
        assert err.value.field == "layers[1].alpha" and says in err.value.msg


def test_keras2_groups_1_of_layers_without_groups_is_dropped() -> None:
    # tf.keras 2.15's DepthwiseConv2D and Conv2DTranspose inherit Conv's "groups": 1
    conv = {
        "name": "c",
        "trainable": True,
        "dtype": "float32",
        "kernel_size": [3, 3],
        "strides": [1, 1],
        "padding": "valid",
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "groups": 1,
        "activation": "linear",
        "use_bias": True,
    }
    cases = {
        "DepthwiseConv2D": {**conv, "depth_multiplier": 1},
        "Conv2DTranspose": {**conv, "filters": 2, "output_padding": None},
    }
    for class_name, config in cases.items():
        inp = {
            "class_name": "InputLayer",
            "config": {
                "batch_input_shape": [None, 8, 8, 2],
                "dtype": "float32",
                "sparse": False,
                "ragged": False,
                "name": "i",
            },
        }
        topo = {
            "class_name": "Sequential",
            "keras_version": "2.15.0",
            "config": {"name": "s", "layers": [inp, {"class_name": class_name, "config": config}]},
        }
        assert "groups" not in plan(topo).spec["layers"][0]
        config["groups"] = 2
        err = refused(topo)
        assert err.field == "topology.config.layers[1].config.groups" and "not a field" in err.msg
