"""Presets: complete, valid job bodies whose schemes mean what their sources meant."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from app.config import get_settings
from app.initializers import generate, resolve
from app.jobs.presets import PRESET_INFO, PRESETS, UnknownPresetError, apply_preset, list_presets
from app.jobs.reporter import loss_stride
from app.jobs.runplan import build_run_spec, plan_runs
from app.jobs.service import validate_job
from app.training.datasets import check_dataset

UDACITY = ("udacity-mnist", "udacity-fashion")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_job_for_the_trainer(name: str) -> None:
    job = validate_job({"preset": name})
    spec = job.model_dump(mode="json")
    for i in range(len(spec["schemes"])):
        run = build_run_spec(spec, i, 0)
        assert run.hidden_layers == tuple(PRESETS[name]["model"]["hidden_layers"])
    assert set(PRESET_INFO[name]) == {"description", "source", "expected"}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_dataset_passes_the_submission_check(name: str, tmp_path: Path) -> None:
    ref = {k: v for k, v in PRESETS[name]["dataset"].items() if v is not None}
    info = check_dataset(ref, data_dir=tmp_path, allow_downloads=True)
    # Accepted either way: loadable now, or (MNIST without files) downloaded by the worker.
    assert info["available"] or (info["downloadable"] and info["where"] == "download")
    if name in (*UDACITY, "too-small"):
        assert (info["n_train"], info["n_val"], info["input_dim"], info["n_outputs"]) == (
            55_000,
            5_000,
            784,
            10,
        )
        steps = 858  # the Udacity helper's "After 858 Batches (2 Epochs)"
    else:
        assert (info["n_train"], info["n_val"], info["task"]) == (300, 100, "binary")
        steps = 15_000
    spec = validate_job({"preset": name}).model_dump(mode="json")
    assert {plan["total_steps"] for plan in plan_runs(spec, info)} == {steps}


def test_udacity_protocol() -> None:
    for name in UDACITY:
        body = PRESETS[name]
        assert body["model"] == {
            "hidden_layers": [256, 128],
            "activation": "relu",
            "bias_initializer": "zeros",
        }
        t = body["training"]
        assert (t["batch_size"], t["epochs"], t["optimizer"]["name"]) == (128, 2, "adam")
        assert t["drop_last"] is True  # "After 858 Batches (2 Epochs)"
        assert t["optimizer"]["learning_rate"] == 0.001 and t["optimizer"]["eps"] == 1e-8
        assert body["dataset"]["validation_size"] == 5000
        assert [resolve(s["initializer"]).name for s in body["schemes"]] == [
            "zeros",
            "ones",
            "random_uniform",
            "random_uniform",
            "general_rule",
            "random_normal",
            "truncated_normal",
        ]
    assert PRESETS["udacity-mnist"]["dataset"]["name"] == "mnist"
    assert PRESETS["udacity-fashion"]["dataset"]["name"] == "fashion-mnist"
    assert PRESETS["too-small"]["dataset"]["name"] == "fashion-mnist"


def _scheme(preset: str, label: str) -> object:
    (scheme,) = [s for s in PRESETS[preset]["schemes"] if s["label"] == label]
    return scheme["initializer"]


def _torch(fill) -> np.ndarray:
    w = torch.empty(256, 784)  # torch layout (out, in) of a 784→256 layer
    torch.manual_seed(0)
    fill(w)
    return w.numpy().T


# Each scheme as the source framework meant it, drawn by torch 2.13 for a 784→256 kernel.
REFERENCES = [
    ("udacity-mnist", "Uniform [0, 1)", lambda w: torch.nn.init.uniform_(w, 0.0, 1.0)),
    ("udacity-mnist", "Uniform [-1, 1)", lambda w: torch.nn.init.uniform_(w, -1.0, 1.0)),
    (
        "udacity-mnist",
        "General Rule",  # U(±1/√fan_in) = torch's nn.Linear default
        lambda w: torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5)),
    ),
    ("udacity-mnist", "Normal Distribution", lambda w: torch.nn.init.normal_(w, 0.0, 0.1)),
    (
        "udacity-mnist",
        "Truncated Normal",  # tf.truncated_normal: redrawn outside ±2σ
        lambda w: torch.nn.init.trunc_normal_(w, 0.0, 0.1, -0.2, 0.2),
    ),
    ("too-small", "Uniform [-0.01, 0.01)", lambda w: torch.nn.init.uniform_(w, -0.01, 0.01)),
    ("dlai-circles", "large random", lambda w: torch.nn.init.normal_(w, 0.0, 10.0)),
    (
        "dlai-circles",
        "He",  # np.random.randn(...) * sqrt(2 / fan_in)
        lambda w: torch.nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
    ),
]


BOUNDED = {
    "Uniform [0, 1)",
    "Uniform [-1, 1)",
    "General Rule",
    "Truncated Normal",
    "Uniform [-0.01, 0.01)",
}


@pytest.mark.conformance
@pytest.mark.parametrize(("preset", "label", "fill"), REFERENCES)
def test_schemes_match_their_reference_distribution(preset: str, label: str, fill) -> None:
    ours = generate(resolve(_scheme(preset, label)), (784, 256), seed=1)
    ref = _torch(fill)
    assert ours.shape == ref.shape == (784, 256)
    assert float(ours.std()) == pytest.approx(float(ref.std()), rel=0.02)
    assert float(ours.mean()) == pytest.approx(float(ref.mean()), abs=0.02 * float(ref.std()))
    if label in BOUNDED:  # same support: nothing outside the reference's range
        slack = 0.01 * float(np.abs(ref).max())
        assert ours.min() >= ref.min() - slack and ours.max() <= ref.max() + slack


def test_dlai_protocol() -> None:
    body = PRESETS["dlai-circles"]
    assert body["model"]["hidden_layers"] == [10, 5]
    assert body["training"] == {
        "optimizer": {"name": "sgd", "learning_rate": 0.01},
        "loss": "binary_cross_entropy",
        "batch_size": "full",
        "steps": 15_000,
    }
    assert [s["label"] for s in body["schemes"]] == ["zeros", "large random", "He"]


def test_dlai_loss_plot_covers_all_15000_steps_within_the_limits() -> None:
    """He learns between steps ~2,000 and ~6,000: the report must plot every step exactly."""
    record = validate_job({"preset": "dlai-circles"}).model_dump(mode="json")["record"]
    assert record["plot_n_batches"] == 15_000
    # The reporter stores min(record, settings) points and keeps the first plot_n exactly.
    limit = min(record["max_batch_points"], get_settings().max_batch_points)
    assert limit >= record["plot_n_batches"]
    assert loss_stride(15_000, record["plot_n_batches"], limit) == 1


def test_overrides_deep_merge_over_the_preset() -> None:
    before = copy.deepcopy(PRESETS)
    body = apply_preset(
        {
            "preset": "udacity-fashion",
            "repeats": 5,
            "training": {"epochs": 1, "optimizer": {"learning_rate": 0.01}},
            "dataset": {"train_size": 1000},
            "schemes": [{"label": "He", "initializer": "he_normal"}],
        }
    )
    assert "preset" not in body and body["repeats"] == 5
    assert body["training"]["epochs"] == 1 and body["training"]["batch_size"] == 128
    assert body["training"]["optimizer"] == {"name": "adam", "learning_rate": 0.01, "eps": 1e-8}
    assert body["dataset"] == {"name": "fashion-mnist", "validation_size": 5000, "train_size": 1000}
    assert body["schemes"] == [{"label": "He", "initializer": "he_normal"}]  # lists replace
    assert before == PRESETS  # the presets themselves are untouched
    body["model"]["hidden_layers"].append(1)
    assert before == PRESETS


def test_a_body_without_preset_is_returned_unchanged() -> None:
    body = {"dataset": {"name": "circles"}, "schemes": [{"initializer": "zeros"}]}
    out = apply_preset(body)
    assert out == body and out is not body


@pytest.mark.parametrize("name", ["udacity", "", None, 3])
def test_unknown_preset_lists_the_valid_names(name: object) -> None:
    with pytest.raises(UnknownPresetError) as info:
        apply_preset({"preset": name})
    assert isinstance(info.value, KeyError)
    assert info.value.field == "preset" and info.value.value == name
    for valid in PRESETS:
        assert valid in str(info.value)


def test_list_presets_describes_each_in_order() -> None:
    listed = list_presets()
    assert [p["name"] for p in listed] == list(PRESETS)
    for entry in listed:
        assert entry["body"] == PRESETS[entry["name"]] and entry["description"]
    assert "0.83/0.86" in listed[-1]["expected"]
