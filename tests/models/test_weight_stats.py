"""Each model weight's statistics match what its initializer promises, on Keras's and TF.js's
defaults: mean and std within a tolerance computed from the sample size, the scheme's bounds
(uniform limit, truncation at 2 std) reached but never crossed, orthogonal recurrent kernels,
the LSTM forget-gate block, the normalizations' ones and zeros, Embedding's uniform ±0.05.

The promises are this file's own table (the frameworks' documented defaults and formulas), not
the service's echo, and Keras 3 (NumPy backend) is the reference: its own initialization of the
same layers satisfies the same promises and has the same std and reach as ours. TF.js's own
initialization is compared in ``tests/conformance/tfjs/stats.test.mjs``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pytest

from app.models import LAYER_TYPES, Limits, ModelPlan, plan_model, weight_values

LIMITS = Limits(
    max_params=50_000_000,
    max_layers=256,
    max_weight_elements=16_777_216,
    max_orthogonal_work=2048**3,
    max_rank=8,
)
# z-score of every statistical bound: two-sided p ~ 6e-7 per check for a correct scheme.
Z = 5.0
# std of a standard normal truncated to (-2, 2) (Keras divides by it, TF.js 4.22 does not).
TRUNC_STD = 0.87962566103423978
SEED = 7

# Non-square kernels, so that fan_in, fan_out and fan_avg (Glorot, He, LeCun) all differ, and
# every random weight has >= 4096 elements (std known to ~1-3%: the 0.88 factor is ~12%).
SPECS: dict[str, dict[str, Any]] = {
    "dense": {
        "input_shape": [128],
        "layers": [
            {"type": "dense", "units": 512, "activation": "relu"},
            {"type": "batch_normalization"},
            {"type": "layer_normalization"},
            {"type": "dense", "units": 96},
        ],
    },
    "conv": {
        "input_shape": [12, 12, 32],
        "layers": [
            {"type": "conv2d", "filters": 64, "kernel_size": 3},
            {"type": "batch_normalization"},
        ],
    },
    "sequence": {
        "input_shape": [10],
        "layers": [
            {"type": "embedding", "input_dim": 1000, "output_dim": 64},
            {"type": "conv1d", "filters": 48, "kernel_size": 5, "padding": "same"},
            {"type": "lstm", "units": 64, "return_sequences": True},
            {"type": "gru", "units": 64, "return_sequences": True},
            {"type": "simple_rnn", "units": 128},
        ],
    },
    # The named schemes, explicitly (their meaning does not depend on ``defaults``).
    "schemes": {
        "input_shape": [256],
        "layers": [
            {"type": "dense", "units": 640, "kernel_initializer": "he_normal"},
            {"type": "dense", "units": 128, "kernel_initializer": "lecun_normal"},
            {"type": "dense", "units": 512, "kernel_initializer": "glorot_normal"},
            {"type": "dense", "units": 96, "kernel_initializer": "he_uniform"},
            {"type": "dense", "units": 384, "kernel_initializer": "lecun_uniform"},
            {"type": "dense", "units": 160, "kernel_initializer": "random_normal"},
            {"type": "dense", "units": 128, "kernel_initializer": "truncated_normal"},
            {"type": "dense", "units": 64, "kernel_initializer": "orthogonal"},
        ],
    },
    "conv_schemes": {
        "input_shape": [20, 16],
        "layers": [
            {"type": "conv1d", "filters": 96, "kernel_size": 7, "kernel_initializer": "he_normal"},
            {"type": "conv1d", "filters": 32, "kernel_size": 5, "kernel_initializer": "he_uniform"},
        ],
    },
    "conv3d": {
        "input_shape": [8, 8, 8, 32],
        "layers": [
            {"type": "conv3d", "filters": 48, "kernel_size": 3},
            {"type": "conv3d_transpose", "filters": 16, "kernel_size": 3},
        ],
    },
    # Transposed kernels (*k, filters, in) and depthwise ones (*k, in, multiplier): Keras's fans
    # are read off the kernel shape as it is, like any other.
    "conv2d_variants": {
        "input_shape": [12, 12, 32],
        "layers": [
            {"type": "conv2d_transpose", "filters": 48, "kernel_size": 3},
            {"type": "depthwise_conv2d", "kernel_size": 5, "depth_multiplier": 4},
            {"type": "separable_conv2d", "filters": 64, "kernel_size": 3, "depth_multiplier": 3},
            {"type": "p_re_lu"},
        ],
    },
    "conv1d_variants": {
        "input_shape": [40, 32],
        "layers": [
            {"type": "conv1d_transpose", "filters": 48, "kernel_size": 5},
            {"type": "depthwise_conv1d", "kernel_size": 9, "depth_multiplier": 10},
            {"type": "separable_conv1d", "filters": 32, "kernel_size": 3, "depth_multiplier": 3},
        ],
    },
}
DEFAULTS = ("keras", "tfjs")

Kind = Literal["uniform", "truncated", "normal", "orthogonal", "constant"]


@dataclass(frozen=True)
class Promise:
    """What an initializer promises about one weight.

    ``scale``: uniform: the limit L of U[-L, L]; truncated: the pre-truncation sigma (cut at
    ±2 sigma); normal: the std; constant: the value. ``ones``: a block ``[start, stop)`` of a
    constant weight that is one instead (the LSTM forget gate with unit_forget_bias).
    """

    kind: Kind
    scale: float = 0.0
    ones: tuple[int, int] | None = None

    @property
    def std(self) -> float:
        return {"uniform": self.scale / math.sqrt(3), "truncated": self.scale * TRUNC_STD}.get(
            self.kind, self.scale
        )


def _truncated_kurtosis(a: float = 2.0) -> float:
    """Kurtosis of a standard normal truncated to (-a, a): m4 / m2**2, from the moments
    m2 = 1 - 2a phi(a)/Z and m4 = 3 m2 - 2a^3 phi(a)/Z, Z = P(|x| < a)."""
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(a / math.sqrt(2))
    m2 = 1 - 2 * a * phi / mass
    m4 = 3 * m2 - 2 * a**3 * phi / mass
    return m4 / m2**2


KURTOSIS = {"uniform": 1.8, "normal": 3.0, "truncated": _truncated_kurtosis()}


def fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """Keras's fans of a kernel ``(*spatial, in, out)``."""
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def variance_scaling(
    shape: tuple[int, ...], scale: float, mode: str, dist: str, corrected: bool = True
) -> Promise:
    fan_in, fan_out = fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    var = scale / max(1.0, fan)
    if dist == "uniform":
        return Promise("uniform", math.sqrt(3 * var))
    return Promise("truncated", math.sqrt(var) / (TRUNC_STD if corrected else 1.0))


_SCHEMES = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "normal"),
}
_FIXED = {
    "random_normal": Promise("normal", 0.05),
    "truncated_normal": Promise("truncated", 0.05),
    "random_uniform": Promise("uniform", 0.05),
    "orthogonal": Promise("orthogonal"),
    "zeros": Promise("constant", 0.0),
    "ones": Promise("constant", 1.0),
}
# The frameworks' defaults per weight role: Keras 3 and TF.js 4.22 (tfjs-layers: Dense/Conv/RNN
# kernels glorotNormal, an uncorrected normal truncated at 2 std).
DEFAULT_NAMES: dict[str, dict[str, str]] = {
    "keras": {
        "kernel": "glorot_uniform",
        "recurrent": "orthogonal",
        "bias": "zeros",
        "embeddings": "random_uniform",
        "gamma": "ones",
        "beta": "zeros",
        "moving_mean": "zeros",
        "moving_variance": "ones",
        "depthwise": "glorot_uniform",
        "pointwise": "glorot_uniform",
        "alpha": "zeros",
    },
}
DEFAULT_NAMES["tfjs"] = {
    **DEFAULT_NAMES["keras"],
    "kernel": "tfjs_glorot_normal",
    "depthwise": "tfjs_glorot_normal",
}
# TF.js 4.22's SeparableConv defaults both its kernels to glorotUniform (tfjs-layers
# convolutional.ts), unlike its DepthwiseConv2D (glorotNormal).
_TFJS_SEPARABLE = {"depthwise": "glorot_uniform", "pointwise": "glorot_uniform"}


def promise(name: str, shape: tuple[int, ...]) -> Promise:
    if name == "tfjs_glorot_normal":
        return variance_scaling(shape, 1.0, "fan_avg", "normal", corrected=False)
    if name in _SCHEMES:
        return variance_scaling(shape, *_SCHEMES[name])
    return _FIXED[name]


def promises(label: str, defaults: str, plan: ModelPlan) -> dict[str, Promise]:
    """Each weight's promise from the spec's explicit initializer, else the default's."""
    raw = {
        layer.name: spec for layer, spec in zip(plan.layers, SPECS[label]["layers"], strict=True)
    }
    out = {}
    for layer in plan.layers:
        for w in layer.weights:
            role = w.field.removesuffix("_initializer")
            default = DEFAULT_NAMES[defaults][role]
            if defaults == "tfjs" and layer.kind.type.startswith("separable_conv"):
                default = _TFJS_SEPARABLE.get(role, default)
            name = raw[layer.name].get(w.field, default)
            p = promise(name, w.shape)
            unit_forget = layer.kind.type == "lstm" and raw[layer.name].get(
                "unit_forget_bias", defaults == "keras"
            )
            if role == "bias" and unit_forget:
                units = w.shape[-1] // 4
                p = replace(p, ones=(units, 2 * units))
            out[w.name] = p
    return out


def std_error(std: float, n: int, kind: str) -> float:
    """The std of the sample std of ``n`` draws: std * sqrt((kurtosis - 1) / (4n))."""
    return std * math.sqrt((KURTOSIS[kind] - 1) / (4 * n))


def orthogonal_error(x: np.ndarray) -> float:
    """max |Q^T Q - I| along the short side of the (prod(shape[:-1]), shape[-1]) matrix."""
    m = x.reshape(-1, x.shape[-1]).astype(np.float64)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    return float(np.abs(gram - np.eye(gram.shape[0])).max())


def problems(x: np.ndarray, p: Promise) -> list[str]:
    """Every way ``x`` breaks promise ``p`` (empty: it keeps it)."""
    if p.kind == "constant":
        want = np.full(x.shape, p.scale, np.float32)
        if p.ones is not None:
            want[p.ones[0] : p.ones[1]] = 1.0
        return [] if np.array_equal(x, want) else [f"not the constant {p.scale} (ones {p.ones})"]
    if p.kind == "orthogonal":
        err = orthogonal_error(x)
        return [] if err < 1e-5 else [f"|Q^T Q - I| = {err:.3g}"]
    out = []
    v = x.astype(np.float64).ravel()
    n = v.size
    mean, std = float(v.mean()), float(v.std())
    if abs(mean) > Z * p.std / math.sqrt(n):
        out.append(f"mean {mean:.4g} (0 ± {Z * p.std / math.sqrt(n):.3g})")
    tol = Z * std_error(p.std, n, p.kind)
    if abs(std - p.std) > tol:
        out.append(f"std {std:.5g} != {p.std:.5g} ± {tol:.2g}")
    if p.kind == "normal":
        # Untruncated: P(|x| > 2 std) = 0.0455 (a truncated draw has none).
        tail, frac = math.erfc(math.sqrt(2)), float((np.abs(v) > 2 * p.std).mean())
        if abs(frac - tail) > Z * math.sqrt(tail * (1 - tail) / n):
            out.append(f"P(|x| > 2 std) = {frac:.4f} != {tail:.4f}")
        return out
    # The bound is reached: P(max < bound (1 - t)) ~ exp(-n t density) < 1e-6 at these t.
    bound, t = (p.scale, 30 / n) if p.kind == "uniform" else (2 * p.scale, 150 / n)
    reach = bound * (1 + 4e-7)  # float32 rounding of the bound itself
    lo, hi = float(v.min()), float(v.max())
    if -lo > reach or hi > reach:
        out.append(f"values [{lo:.5g}, {hi:.5g}] cross the bound ±{bound:.5g}")
    if min(-lo, hi) < bound * (1 - t):
        out.append(f"values [{lo:.5g}, {hi:.5g}] do not reach ±{bound:.5g} (1 - {t:.2g})")
    return out


def planned(label: str, defaults: str) -> ModelPlan:
    return plan_model({**SPECS[label], "seed": SEED, "defaults": defaults}, LIMITS)


CASES = [(label, d) for label in SPECS for d in DEFAULTS]


def test_the_specs_cover_every_weighted_layer_type() -> None:
    weighted = {t.type for t in LAYER_TYPES.values() if t.roles}
    used = {layer["type"] for spec in SPECS.values() for layer in spec["layers"]}
    assert weighted <= used, f"no statistics test for {sorted(weighted - used)}"


@pytest.mark.parametrize(("label", "defaults"), CASES)
def test_every_weight_keeps_its_initializers_promise(label: str, defaults: str) -> None:
    plan = planned(label, defaults)
    wanted = promises(label, defaults, plan)
    broken = {w.name: problems(weight_values(w), wanted[w.name]) for w in plan.weights}
    assert not any(broken.values()), {k: v for k, v in broken.items() if v}


@pytest.mark.parametrize(("label", "defaults"), CASES)
def test_the_bounds_reject_the_wrong_scale_or_scheme(label: str, defaults: str) -> None:
    """At these sizes the same values scaled by 0.88 (a missing or extra truncation
    correction) or drawn from the other scheme at the same std break the promise."""
    plan = planned(label, defaults)
    wanted = promises(label, defaults, plan)
    rng = np.random.default_rng(0)
    for w in plan.weights:
        p = wanted[w.name]
        if p.kind not in KURTOSIS:
            continue
        x = weight_values(w)
        for factor in (TRUNC_STD, 1 / TRUNC_STD):
            assert problems(x * np.float32(factor), p), (w.name, factor)
        if p.kind == "uniform":
            other = rng.standard_normal(2 * x.size)
            other = other[np.abs(other) < 2][: x.size] * p.std / TRUNC_STD
        else:
            other = rng.uniform(-1, 1, x.size) * p.std * math.sqrt(3)
        assert problems(other.astype(np.float32), p), (w.name, "other scheme")


@pytest.mark.parametrize("defaults", DEFAULTS)
def test_recurrent_kernels_are_orthogonal_as_a_whole_not_per_gate(defaults: str) -> None:
    """Keras 3 and TF.js 4.22 both draw one orthogonal (units, gates * units) matrix: its rows
    are orthonormal (W W^T = I), so a gate block's rows are not (their squared norms are
    about 1 / gates), except SimpleRNN's single square block (W^T W = I too)."""
    plan = planned("sequence", defaults)
    for w in plan.weights:
        if not w.name.endswith("/recurrent_kernel"):
            continue
        x = weight_values(w).astype(np.float64)
        units, gates = x.shape[0], x.shape[1] // x.shape[0]
        assert np.abs(x @ x.T - np.eye(units)).max() < 1e-5, w.name
        if gates == 1:
            assert np.abs(x.T @ x - np.eye(units)).max() < 1e-5, w.name
            continue
        for g in range(gates):
            block = x[:, g * units : (g + 1) * units]
            norms = np.diag(block @ block.T)
            assert abs(norms.mean() - 1 / gates) < 0.05, (w.name, g, norms.mean())
            assert orthogonal_error(block) > 0.5, (w.name, g)


def test_lstm_forget_gate_block_follows_unit_forget_bias() -> None:
    for defaults, ones in (("keras", True), ("tfjs", False)):
        plan = planned("sequence", defaults)
        bias = weight_values(next(w for w in plan.weights if w.name == "lstm/bias"))
        assert bias.shape == (256,)
        assert np.array_equal(bias[64:128], np.full(64, float(ones), np.float32)), defaults
        assert not np.any(np.delete(bias, np.s_[64:128])), defaults
    explicit = plan_model(
        {
            "input_shape": [3, 2],
            "layers": [{"type": "lstm", "units": 5, "unit_forget_bias": True}],
            "defaults": "tfjs",
            "seed": 1,
        },
        LIMITS,
    )
    bias = weight_values(explicit.weights[2])
    assert bias.tolist() == [0.0] * 5 + [1.0] * 5 + [0.0] * 10


# --- Keras 3 as the reference ----------------------------------------------------------------


@pytest.fixture(scope="module")
def keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    assert keras.backend.backend() == "numpy", keras.backend.backend()
    return keras


def keras_weights(keras: Any, label: str, plan: ModelPlan) -> dict[str, np.ndarray]:
    """Keras builds the canonical model with its own initializers: its defaults, or the
    scheme named in the spec (Keras's own class; Keras's global seed fixed, so each run draws
    the same)."""
    keras.utils.set_random_seed(SEED)
    layers: list[Any] = [keras.Input(tuple(plan.spec["input_shape"]))]
    for config, raw in zip(plan.spec["layers"], SPECS[label]["layers"], strict=True):
        kwargs = {k: v for k, v in config.items() if k != "type" and not k.endswith("_initializer")}
        kwargs.update((k, v) for k, v in raw.items() if k.endswith("_initializer"))
        layers.append(getattr(keras.layers, LAYER_TYPES[config["type"]].class_name)(**kwargs))
    model = keras.Sequential(layers)
    return {
        f"{layer.name}/{v.name}": np.array(v.value) for layer in model.layers for v in layer.weights
    }


@pytest.mark.conformance
@pytest.mark.parametrize("label", sorted(SPECS))
def test_keras_own_initialization_keeps_the_same_promises(keras: Any, label: str) -> None:
    plan = planned(label, "keras")
    wanted = promises(label, "keras", plan)
    theirs = keras_weights(keras, label, plan)
    assert sorted(theirs) == sorted(wanted)
    broken = {name: problems(x, wanted[name]) for name, x in theirs.items()}
    assert not any(broken.values()), {k: v for k, v in broken.items() if v}


@pytest.mark.conformance
@pytest.mark.parametrize("label", sorted(SPECS))
def test_ours_and_keras_own_agree_in_std_and_reach(keras: Any, label: str) -> None:
    """Ours against Keras's own draw of the same layer, without our formulas: the two stds
    differ by less than Z combined standard errors (from each sample's own kurtosis), the two
    largest |values| by less than the bounds' reach tolerance; constants are equal."""
    plan = planned(label, "keras")
    wanted = promises(label, "keras", plan)
    theirs = keras_weights(keras, label, plan)
    for w in plan.weights:
        ours, ref = weight_values(w).astype(np.float64), theirs[w.name].astype(np.float64)
        assert ours.shape == ref.shape, w.name
        kind = wanted[w.name].kind
        if kind == "constant":
            assert np.array_equal(ours, ref), w.name
        if kind not in KURTOSIS:
            continue  # orthogonal: both keep W W^T = I (the test above), the draws differ
        se = math.hypot(_sample_std_error(ours), _sample_std_error(ref))
        assert abs(ours.std() - ref.std()) < Z * se, (w.name, ours.std(), ref.std(), se)
        if kind != "normal":
            reach = np.abs(ours).max() / np.abs(ref).max()
            assert abs(reach - 1) < 300 / ours.size, (w.name, reach)


def _sample_std_error(x: np.ndarray) -> float:
    centred = x.ravel() - x.mean()
    m2 = float(np.mean(centred**2))
    kurtosis = float(np.mean(centred**4)) / m2**2
    return math.sqrt(m2) * math.sqrt((kurtosis - 1) / (4 * x.size))
