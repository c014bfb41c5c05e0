"""Name resolution in every framework's spelling, config forms, round trips, the catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from initializer_cases import BY_NAME, ENTRIES, NAMES

from app.initializers import (
    Initializer,
    InitializerError,
    UnknownInitializerError,
    catalog,
    describe,
    generate,
    resolve,
)

SPELLINGS = [
    # Keras: class names, snake_case, aliases
    ("GlorotUniform", "glorot_uniform"),
    ("glorot_uniform", "glorot_uniform"),
    ("HeNormal", "he_normal"),
    ("LecunNormal", "lecun_normal"),
    ("lecun_uniform", "lecun_uniform"),
    ("RandomNormal", "random_normal"),
    ("normal", "random_normal"),
    ("uniform", "random_uniform"),
    ("zero", "zeros"),
    ("one", "ones"),
    ("IdentityInitializer", "identity"),
    ("OrthogonalInitializer", "orthogonal"),
    ("TruncatedNormal", "truncated_normal"),
    ("VarianceScaling", "variance_scaling"),
    ("Constant", "constant"),
    ("keras.initializers.HeUniform", "he_uniform"),
    ("tf.keras.initializers.GlorotNormal", "glorot_normal"),
    # TF.js
    ("glorotUniform", "glorot_uniform"),
    ("heNormal", "he_normal"),
    ("leCunNormal", "lecun_normal"),
    ("LeCunNormal", "lecun_normal"),
    ("leCunUniform", "lecun_uniform"),
    ("varianceScaling", "variance_scaling"),
    ("randomUniform", "random_uniform"),
    ("truncatedNormal", "truncated_normal"),
    ("tf.initializers.glorotNormal", "glorot_normal"),
    # PyTorch, with and without the trailing underscore
    ("xavier_uniform_", "xavier_uniform"),
    ("xavier_uniform", "xavier_uniform"),
    ("xavier_normal_", "xavier_normal"),
    ("kaiming_normal", "kaiming_normal"),
    ("kaiming_uniform_", "kaiming_uniform"),
    ("trunc_normal_", "trunc_normal"),
    ("trunc_normal", "trunc_normal"),
    ("orthogonal_", "torch_orthogonal"),
    ("dirac_", "dirac"),
    ("dirac", "dirac"),
    ("eye_", "eye"),
    ("sparse_", "sparse"),
    ("normal_", "torch_normal"),
    ("uniform_", "torch_uniform"),
    ("constant_", "constant"),
    ("zeros_", "zeros"),
    ("ones_", "ones"),
    ("torch.nn.init.orthogonal", "torch_orthogonal"),
    ("torch.nn.init.kaiming_normal_", "kaiming_normal"),
    ("nn.init.xavier_normal", "xavier_normal"),
    # JAX
    ("variance_scaling", "variance_scaling"),
    ("delta_orthogonal", "delta_orthogonal"),
    ("jax.nn.initializers.uniform", "jax_uniform"),
    ("jax.nn.initializers.normal", "jax_normal"),
    ("jax.nn.initializers.truncated_normal", "jax_truncated_normal"),
    ("jax.nn.initializers.xavier_normal", "glorot_normal"),
    ("jax.nn.initializers.kaiming_uniform", "he_uniform"),
    ("jax.nn.initializers.orthogonal", "orthogonal"),
    ("jax.nn.initializers.he_normal", "he_normal"),
    # the service's own
    ("torch_default", "torch_default"),
    ("general_rule", "general_rule"),
    ("small_random", "small_random"),
    ("large_random", "large_random"),
    # case and separator insensitive
    ("HE_NORMAL", "he_normal"),
    ("he-normal", "he_normal"),
    ("He Normal", "he_normal"),
    ("GLOROTUNIFORM", "glorot_uniform"),
    (" glorot_uniform ", "glorot_uniform"),
    ("Kaiming-Normal_", "kaiming_normal"),
]


@pytest.mark.parametrize(("spelling", "canonical"), SPELLINGS)
def test_every_spelling_resolves(spelling: str, canonical: str) -> None:
    assert resolve(spelling).name == canonical


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_every_listed_alias_resolves_to_its_entry(entry: dict[str, Any]) -> None:
    for alias in entry["aliases"]:
        assert resolve(alias).name == entry["name"], alias
        assert describe(alias) == entry


def test_keras_object_ignores_module_and_registered_name_and_keeps_the_seed() -> None:
    init = resolve(
        {
            "module": "keras.initializers",
            "class_name": "VarianceScaling",
            "config": {
                "scale": 2.0,
                "mode": "fan_in",
                "distribution": "truncated_normal",
                "seed": 7,
            },
            "registered_name": None,
        }
    )
    assert init.name == "variance_scaling" and init.seed == 7
    assert init.params["scale"] == 2.0 and init.params["mode"] == "fan_in"


def test_tfjs_object_with_camel_case_keys_and_values() -> None:
    init = resolve(
        {
            "className": "VarianceScaling",
            "config": {"scale": 2, "mode": "fanIn", "distribution": "truncatedNormal"},
        }
    )
    assert init.params["mode"] == "fan_in"
    assert init.params["distribution"] == "truncated_normal"
    assert init.seed is None
    # TF.js "normal" is Keras's truncated normal.
    normal = resolve(
        {"className": "VarianceScaling", "config": {"distribution": "normal", "mode": "fanAvg"}}
    )
    assert normal.params["distribution"] == "truncated_normal"
    assert resolve({"className": "LeCunNormal", "config": {"seed": 3}}).seed == 3


def test_jax_variance_scaling_normal_is_untruncated() -> None:
    init = resolve(
        {"name": "jax.nn.initializers.variance_scaling", "params": {"distribution": "normal"}}
    )
    assert init.params["distribution"] == "untruncated_normal"
    assert (
        resolve({"name": "variance_scaling", "params": {"distribution": "normal"}}).params[
            "distribution"
        ]
        == "truncated_normal"
    )


def test_name_params_form_with_seed_beside_or_inside() -> None:
    assert resolve({"name": "he_normal", "seed": 5}).seed == 5
    assert resolve({"name": "he_normal", "params": {"seed": 6}}).seed == 6
    init = resolve(
        {
            "name": "kaiming_normal",
            "params": {"a": 0.2, "nonlinearity": "leaky_relu", "mode": "fan_out"},
        }
    )
    assert init.params == {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}


def test_parameter_synonyms() -> None:
    assert resolve({"name": "constant_", "params": {"val": 2}}).params["value"] == 2.0
    assert (
        resolve({"name": "jax.nn.initializers.orthogonal", "params": {"scale": 2}}).params["gain"]
        == 2.0
    )


# Non-default parameters for every scheme that has any, so round trips carry real values.
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "constant": {"value": 0.25},
    "random_uniform": {"minval": -1.0, "maxval": 3.0},
    "random_normal": {"mean": 0.5, "stddev": 2.0},
    "truncated_normal": {"stddev": 0.3},
    "variance_scaling": {"scale": 0.5, "mode": "fan_geo_avg", "distribution": "uniform"},
    "glorot_uniform": {"input_axes": [0], "output_axes": [1]},
    "orthogonal": {"gain": 1.7},
    "identity": {"gain": 0.5},
    "delta_orthogonal": {"scale": 2.0},
    "xavier_uniform": {"gain": 5 / 3},
    "xavier_normal": {"gain": 2.0},
    "kaiming_uniform": {"a": 0.1, "mode": "fan_out", "nonlinearity": "leaky_relu"},
    "kaiming_normal": {"nonlinearity": "tanh"},
    "trunc_normal": {"mean": 0.1, "std": 0.02, "a": -0.05, "b": 0.2},
    "dirac": {"groups": 2},
    "sparse": {"sparsity": 0.5, "std": 0.1},
    "torch_orthogonal": {"gain": 0.5},
    "torch_normal": {"std": 0.1},
    "torch_uniform": {"a": -2.0, "b": -1.0},
    "jax_uniform": {"scale": 3.0},
    "jax_normal": {"stddev": 0.5},
    "jax_truncated_normal": {"lower": -1.0, "upper": 3.0},
}


def _init(name: str, seed: int | None) -> Initializer:
    return resolve({"name": name, "params": NON_DEFAULT.get(name, {}), "seed": seed})


@pytest.mark.parametrize("name", NAMES)
def test_keras_config_round_trips(name: str) -> None:
    init = _init(name, 11)
    config = init.keras_config(11)
    assert set(config) == {"class_name", "config"}
    again = resolve(config)
    if init.random:
        assert again == init
        assert config["config"]["seed"] == 11
    else:
        assert (again.name, again.params, again.seed) == (init.name, init.params, None)


@pytest.mark.parametrize("name", NAMES)
def test_tfjs_config_round_trips_to_the_same_values(name: str) -> None:
    init = _init(name, 13)
    config = init.tfjs_config(13)
    assert set(config) == {"className", "config"}
    assert all("_" not in key for key in config["config"])
    again = resolve(config)
    shape = {"dirac": (4, 2, 3, 3), "delta_orthogonal": (3, 3, 4, 6), "stft": (8, 1, 5)}.get(
        name, (6, 8)
    )
    assert generate(again, shape, seed=13).tobytes() == generate(init, shape, seed=13).tobytes()


def test_glorot_family_serializes_as_tfjs_variance_scaling() -> None:
    assert resolve("he_normal").tfjs_config(1) == {
        "className": "VarianceScaling",
        "config": {"scale": 2.0, "mode": "fanIn", "distribution": "normal", "seed": 1},
    }
    assert resolve("lecun_uniform").keras_config(None) == {
        "class_name": "LecunUniform",
        "config": {"seed": None, "input_axes": None, "output_axes": None},
    }


def test_tfjs_unsupported_reads_the_shape_only_when_given_one() -> None:
    # Without a shape (model.json's initializers): the parameters alone decide.
    assert resolve("identity").tfjs_unsupported() is None
    assert resolve("glorot_uniform").tfjs_unsupported() is None
    assert "square" in str(resolve("identity").tfjs_unsupported((3, 5)))
    assert resolve("identity").tfjs_unsupported((5, 5)) is None
    glorot = resolve("glorot_uniform")
    assert "sqrt(prod(shape))" in str(glorot.tfjs_unsupported((300,)))
    assert glorot.tfjs_unsupported((1, 1, 1, 1, 9, 9)) is None  # sqrt(81) = 9: Keras's fans
    assert glorot.tfjs_unsupported((3, 4), (3, 4)) is None
    assert "(3, 40)" in str(glorot.tfjs_unsupported((3, 4), (3, 40)))  # an explicit fan_out
    # Schemes without fans or with shape-independent TF.js classes ignore the shape.
    assert resolve("random_uniform").tfjs_unsupported((300,)) is None
    assert resolve("orthogonal").tfjs_unsupported((2, 3, 4, 5, 6, 7)) is None


def test_catalog_entries_have_the_api_shape() -> None:
    entries = catalog()
    assert [e["name"] for e in entries] == NAMES
    assert len(set(NAMES)) == len(NAMES)
    for entry in entries:
        for key in (
            "name",
            "aliases",
            "family",
            "params",
            "formula",
            "description",
            "references",
            "frameworks",
        ):
            assert entry[key] is not None, (entry["name"], key)
        assert set(entry["frameworks"]) == {"keras", "tfjs", "pytorch", "jax"}
        assert entry["formula"] and entry["description"] and entry["references"]
        for param in entry["params"].values():
            assert {"type", "default", "description"} <= set(param)
        init = resolve(entry["name"])
        assert init.params == {k: v["default"] for k, v in entry["params"].items()}


def test_docs_schemes_lists_every_scheme_and_name() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "schemes.md").read_text()
    for entry in ENTRIES:
        assert f"### `{entry['name']}`" in text
        for alias in entry["aliases"]:
            assert f"`{alias}`" in text, alias


def test_catalog_is_a_copy() -> None:
    catalog()[0]["name"] = "changed"
    assert catalog()[0]["name"] == "zeros"


@pytest.mark.parametrize(
    ("query", "suggestion"),
    [
        ("glorot_unifrom", "glorot_uniform"),
        ("kaiming_norml", "kaiming_normal"),
        ("orthogonl", "orthogonal"),
        ("xavier", "xavier_normal"),
    ],
)
def test_unknown_names_suggest_close_matches(query: str, suggestion: str) -> None:
    with pytest.raises(UnknownInitializerError) as info:
        resolve(query)
    assert info.value.field == "name" and info.value.value == query
    assert suggestion in info.value.suggestions
    assert suggestion in str(info.value)
    with pytest.raises(UnknownInitializerError):
        describe(query)


def test_stft_resolves_in_every_keras_spelling() -> None:
    # Issue #7 item 5 added Keras's STFT: this replaces "STFT is not an initlab scheme".
    for spelling in ("STFT", "stft", "STFTInitializer", "keras.initializers.STFT"):
        assert resolve(spelling).name == "stft"
    with pytest.raises(UnknownInitializerError):
        resolve("stft_spectrogram")


def test_resolve_rejects_non_references() -> None:
    for bad in (3, None, ["he_normal"], {"config": {}}):
        with pytest.raises(InitializerError):
            resolve(bad)  # type: ignore[arg-type]


def test_equal_initializers_hash_alike() -> None:
    assert len({resolve("he_normal"), resolve("HeNormal"), resolve("heNormal")}) == 1
    assert np.array_equal(
        generate(resolve("HeNormal"), (3, 3), seed=1), generate(resolve("heNormal"), (3, 3), seed=1)
    )


def test_no_framework_name_is_claimed_by_two_schemes() -> None:
    claimed: dict[str, list[str]] = {}
    for entry in catalog():
        for framework_name in entry["frameworks"].values():
            if framework_name is not None:
                claimed.setdefault(framework_name, []).append(entry["name"])
    shared = {name: schemes for name, schemes in claimed.items() if len(schemes) > 1}
    assert shared == {}
    # torch.nn.init.uniform_ (U[0, 1) by default) is torch_uniform's, not random_uniform's.
    assert BY_NAME["torch_uniform"]["frameworks"]["pytorch"] == "torch.nn.init.uniform_"
    assert BY_NAME["random_uniform"]["frameworks"]["pytorch"] is None


@pytest.mark.parametrize("name", NAMES)
def test_each_framework_name_resolves_to_the_scheme_that_claims_it(name: str) -> None:
    for framework_name in BY_NAME[name]["frameworks"].values():
        if framework_name is None or "(" in framework_name:  # a call with arguments
            continue
        assert resolve(framework_name).name == name, framework_name


def test_dataset_parameters_use_the_same_vocabulary() -> None:
    from app.initializers.params import PARAM_TYPES
    from app.training.datasets import list_datasets

    described = [p for d in list_datasets("/nonexistent", False) for p in d["parameters"].values()]
    assert described and {p["type"] for p in described} <= set(PARAM_TYPES)
    assert {"integer", "number", "string", "boolean"} <= {p["type"] for p in described}
    assert any("choices" in p for p in described) and not any("enum" in p for p in described)


@pytest.mark.parametrize(
    ("param", "value"),
    [("noise", -1.0), ("noise", "a lot"), ("train_size", 2.5), ("seed", True), ("noise", None)],
)
def test_dataset_parameters_are_validated_by_the_shared_param(param: str, value: Any) -> None:
    from app.training.datasets import DatasetError, check_dataset

    with pytest.raises(DatasetError) as info:
        check_dataset(
            {"name": "moons", param: value}, data_dir="/nonexistent", allow_downloads=False
        )
    assert (info.value.field, info.value.value) == (f"dataset.{param}", value)
