"""Named job bodies that reproduce the classic initialization experiments (``GET /v1/presets``).

Each preset is a complete ``POST /v1/jobs`` body (api.md format). A request
``{"preset": NAME, ...overrides}`` is expanded by :func:`apply_preset`: the overrides are
deep-merged over the preset (objects merge key by key, lists and scalars replace).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# The Udacity deep-learning nanodegree notebook "weight_initialization" (TensorFlow 1,
# helper.py `compare_init_weights`): MNIST via tensorflow.examples.tutorials.mnist
# `read_data_sets` (validation = the first 5,000 training images), 784-256-128-10 ReLU,
# tf.train.AdamOptimizer(0.001) (epsilon 1e-8), batch 128, 2 epochs of
# int(55000 / 128) = 429 batches (the partial batch dropped: "After 858 Batches (2 Epochs)"),
# biases tf.zeros, loss curves of the first 100 batches.
_UDACITY_SCHEMES: list[dict[str, Any]] = [
    {"label": "All Zeros", "initializer": "zeros"},
    {"label": "All Ones", "initializer": "ones"},
    {
        "label": "Uniform [0, 1)",
        "initializer": {"name": "random_uniform", "params": {"minval": 0.0, "maxval": 1.0}},
    },
    {
        "label": "Uniform [-1, 1)",
        "initializer": {"name": "random_uniform", "params": {"minval": -1.0, "maxval": 1.0}},
    },
    {"label": "General Rule", "initializer": "general_rule"},
    {
        "label": "Normal Distribution",
        "initializer": {"name": "random_normal", "params": {"mean": 0.0, "stddev": 0.1}},
    },
    {
        "label": "Truncated Normal",
        "initializer": {"name": "truncated_normal", "params": {"mean": 0.0, "stddev": 0.1}},
    },
]


def _udacity(dataset: str, schemes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "dataset": {"name": dataset, "validation_size": 5000, "train_size": None},
        "model": {"hidden_layers": [256, 128], "activation": "relu", "bias_initializer": "zeros"},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.001, "eps": 1e-8},
            "loss": "cross_entropy",
            "batch_size": 128,
            "epochs": 2,
            "drop_last": True,
        },
        "schemes": schemes,
        "repeats": 1,
        "seed": 0,
        "record": {"plot_n_batches": 100},
    }


def _uniform(limit: float) -> dict[str, Any]:
    return {
        "label": f"Uniform [-{limit:g}, {limit:g})",
        "initializer": {"name": "random_uniform", "params": {"minval": -limit, "maxval": limit}},
    }


PRESETS: dict[str, dict[str, Any]] = {
    "udacity-mnist": _udacity("mnist", _UDACITY_SCHEMES),
    "udacity-fashion": _udacity("fashion-mnist", _UDACITY_SCHEMES),
    "too-small": _udacity("fashion-mnist", [_uniform(0.1), _uniform(0.01), _uniform(0.001)]),
    # deeplearning.ai "Improving Deep Neural Networks", week 1 "Initialization": train =
    # np.random.seed(1); make_circles(300, noise=.05), test = np.random.seed(2);
    # make_circles(100, noise=.05); LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID with
    # layers_dims [2, 10, 5, 1]; full-batch gradient descent, learning_rate 0.01,
    # num_iterations 15,000; biases np.zeros. Schemes: zeros, randn * 10 ("large random"),
    # randn * sqrt(2 / fan_in) (He, untruncated).
    "dlai-circles": {
        "dataset": {
            "name": "circles",
            "train_size": 300,
            "validation_size": 100,
            "noise": 0.05,
            "factor": 0.8,
            "seed": 1,
            "validation_seed": 2,
        },
        "model": {"hidden_layers": [10, 5], "activation": "relu", "bias_initializer": "zeros"},
        "training": {
            "optimizer": {"name": "sgd", "learning_rate": 0.01},
            "loss": "binary_cross_entropy",
            "batch_size": "full",
            "steps": 15_000,
        },
        "schemes": [
            {"label": "zeros", "initializer": "zeros"},
            {
                "label": "large random",
                "initializer": {"name": "random_normal", "params": {"mean": 0.0, "stddev": 10.0}},
            },
            {
                "label": "He",
                "initializer": {
                    "name": "variance_scaling",
                    "params": {
                        "scale": 2.0,
                        "mode": "fan_in",
                        "distribution": "untruncated_normal",
                    },
                },
            },
        ],
        "repeats": 1,
        "seed": 3,
        # Every one of the 15,000 steps on the loss plot: He learns between steps ~2,000 and
        # ~6,000, so a shorter prefix shows it as flat as zeros.
        "record": {"plot_n_batches": 15_000, "max_batch_points": 15_000},
    },
}

PRESET_INFO: dict[str, dict[str, str]] = {
    "udacity-mnist": {
        "description": "Udacity's weight-initialization comparison: MNIST 55,000/5,000, "
        "784-256-128-10 ReLU, Adam 0.001, batch 128, 2 epochs, biases 0; zeros, ones, "
        "uniform [0,1), uniform [-1,1), general rule, normal σ=0.1, truncated normal σ=0.1.",
        "source": "Udacity deep-learning nanodegree, notebook weight-initialization "
        "(TensorFlow 1, helper.compare_init_weights)",
        "expected": "constant schemes (zeros, ones) barely learn; uniform [0,1) learns "
        "slowly; [-1,1), the general rule and the σ=0.1 normals learn fastest.",
    },
    "udacity-fashion": {
        "description": "The udacity-mnist protocol on Fashion-MNIST (runs offline with the "
        "Debian package dataset-fashion-mnist).",
        "source": "Udacity weight-initialization protocol; Xiao et al. 2017 Fashion-MNIST",
        "expected": "the same ranking as udacity-mnist, at lower accuracy.",
    },
    "too-small": {
        "description": "Uniform ranges that are too small: [-0.1,0.1), [-0.01,0.01), "
        "[-0.001,0.001) on Fashion-MNIST, otherwise the udacity protocol.",
        "source": "Udacity weight-initialization notebook, 'Too small' section",
        "expected": "the smaller the range, the slower the start (near-symmetric hidden units).",
    },
    "dlai-circles": {
        "description": "deeplearning.ai's Initialization assignment: circles 300 train / 100 "
        "test (noise 0.05), [2,10,5,1] ReLU + sigmoid, full-batch gradient descent lr 0.01, "
        "15,000 steps; zeros, large random N(0,1)×10, He N(0, 2/fan_in).",
        "source": "deeplearning.ai, Improving Deep Neural Networks, week 1, Initialization",
        "expected": "published train/test accuracy: zeros 0.50/0.50, large random 0.83/0.86, "
        "He 0.99/0.96.",
    },
}


class UnknownPresetError(KeyError):
    """``preset`` names no preset; the message lists the valid names."""

    def __init__(self, value: Any) -> None:
        self.field = "preset"
        self.value = value
        self.msg = f"unknown preset {value!r}; valid presets: {', '.join(PRESETS)}"
        super().__init__(self.msg)

    def __str__(self) -> str:
        return self.msg


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_preset(body: Mapping[str, Any]) -> dict[str, Any]:
    """The job body with its ``preset`` expanded and the other keys deep-merged over it.

    A body without ``"preset"`` is returned as a copy. Raises :class:`UnknownPresetError`.
    """
    if "preset" not in body:
        return copy.deepcopy(dict(body))
    name = body["preset"]
    if not isinstance(name, str) or name not in PRESETS:
        raise UnknownPresetError(name)
    overrides = {k: v for k, v in body.items() if k != "preset"}
    return _merge(copy.deepcopy(PRESETS[name]), overrides)


def list_presets() -> list[dict[str, Any]]:
    """``GET /v1/presets``: name, description, source, expected result and the full body."""
    return [
        {"name": name, **PRESET_INFO[name], "body": copy.deepcopy(body)}
        for name, body in PRESETS.items()
    ]
