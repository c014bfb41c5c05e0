"""The layer table: per layer type, its config fields, output shape and weights.

Shapes exclude the batch axis. Kernels use the Keras layout ``(..., in, out)``; weights are
listed in the order Keras 3 and TF.js 4.22 hold them (trainable first, then non-trainable).
Pure Python: no NumPy, nothing allocated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.models.errors import ModelSpecError

# Activations Keras 3 and TF.js 4.22 both know (TF.js reads the snake_case names).
ACTIVATIONS: tuple[str, ...] = (
    "linear",
    "relu",
    "relu6",
    "elu",
    "selu",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softmax",
    "softplus",
    "softsign",
    "swish",
    "gelu",
)


@dataclass(frozen=True)
class WeightShape:
    """One weight a layer creates: ``role`` names its ``<role>_initializer`` config field."""

    name: str
    shape: tuple[int, ...]
    role: str
    # LSTM ``unit_forget_bias``: the block [units, 2*units) of the bias is ones.
    forget_units: int | None = None


@dataclass(frozen=True)
class Inferred:
    """What a layer makes of its input: its canonical config, output shape and weights."""

    config: dict[str, Any]
    output_shape: tuple[int, ...]
    weights: tuple[WeightShape, ...]


class _Fields:
    """Reads one layer's config fields, each refusal naming ``layers[i].<field>``."""

    def __init__(self, raw: Mapping[str, Any], loc: str) -> None:
        self.raw = raw
        self.loc = loc
        self.out: dict[str, Any] = {}

    def fail(self, key: str, msg: str) -> ModelSpecError:
        return ModelSpecError(f"{self.loc}.{key}", self.raw.get(key), msg)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self.raw.get(key, default)
        if value is None:
            raise self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}")
        self.out[key] = value
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "must be a number")
        if not low <= value < high:
            raise self.fail(key, f"must be in [{low}, {high})")
        self.out[key] = float(value)
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        self.out[key] = value
        return value

    def choice(self, key: str, default: str | None, options: tuple[str, ...]) -> str:
        value = self.raw.get(key, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}")
        assert isinstance(value, str)
        self.out[key] = value
        return value

    def ints(self, key: str, default: int | None, n: int, *, minimum: int = 1) -> tuple[int, ...]:
        """An int or a list of ``n`` ints (``kernel_size``, ``strides``)."""
        value = self.raw.get(key, default)
        if value is None:
            raise self.fail(key, "is required")
        items = [value] * n if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(items, list | tuple)
            or len(items) != n
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in items)
        ):
            raise self.fail(key, f"must be an integer >= {minimum} or a list of {n} of them")
        self.out[key] = list(items)
        return tuple(items)

    def axis(self, shape: tuple[int, ...]) -> int:
        """``axis`` (Keras counts the batch axis: -1 is the last, 0 the batch) → its size."""
        value = self.raw.get("axis", -1)
        rank = len(shape) + 1
        if isinstance(value, bool) or not isinstance(value, int) or not -rank <= value < rank:
            raise self.fail("axis", f"must be an integer in [{-rank}, {rank - 1}]")
        if value % rank == 0:
            raise self.fail("axis", "cannot be the batch axis")
        self.out["axis"] = value
        return shape[value % rank - 1]


def _rank(f: _Fields, shape: tuple[int, ...], ranks: tuple[int, ...], what: str) -> None:
    if len(shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ModelSpecError(
            f"{f.loc}.type",
            f.raw.get("type"),
            f"needs an input of rank {want} ({what}, batch excluded); got shape {list(shape)}",
        )


def _dense(f: _Fields, shape: tuple[int, ...], _: str) -> Inferred:
    _rank(f, shape, tuple(range(1, 64)), "(..., features)")
    units = f.integer("units")
    f.choice("activation", "linear", ACTIVATIONS)
    weights = [WeightShape("kernel", (shape[-1], units), "kernel")]
    if f.flag("use_bias", True):
        weights.append(WeightShape("bias", (units,), "bias"))
    return Inferred(f.out, (*shape[:-1], units), tuple(weights))


def _conv(n: int) -> Callable[[_Fields, tuple[int, ...], str], Inferred]:
    def infer(f: _Fields, shape: tuple[int, ...], _: str) -> Inferred:
        _rank(f, shape, (n + 1,), "(spatial..., channels)")
        filters = f.integer("filters")
        kernel = f.ints("kernel_size", None, n)
        strides = f.ints("strides", 1, n)
        padding = f.choice("padding", "valid", ("valid", "same"))
        fmt = f.choice("data_format", "channels_last", ("channels_last", "channels_first"))
        dilation = f.ints("dilation_rate", 1, n)
        groups = f.integer("groups", 1)
        f.choice("activation", "linear", ACTIVATIONS)
        if max(strides) > 1 and max(dilation) > 1:
            raise f.fail("dilation_rate", "cannot exceed 1 when a stride does (Keras refuses it)")
        if fmt == "channels_last":
            channels, spatial = shape[-1], shape[:-1]
        else:
            channels, spatial = shape[0], shape[1:]
        if channels % groups or filters % groups:
            raise f.fail("groups", f"must divide the input channels ({channels}) and filters")
        out = []
        for size, k, s, d in zip(spatial, kernel, strides, dilation, strict=True):
            if padding == "same":
                out.append(-(-size // s))
                continue
            span = d * (k - 1) + 1
            if span > size:
                raise f.fail("kernel_size", f"spans {span} > the input's {size} (padding valid)")
            out.append((size - span) // s + 1)
        weights = [WeightShape("kernel", (*kernel, channels // groups, filters), "kernel")]
        if f.flag("use_bias", True):
            weights.append(WeightShape("bias", (filters,), "bias"))
        result = (*out, filters) if fmt == "channels_last" else (filters, *out)
        return Inferred(f.out, result, tuple(weights))

    return infer


def _flatten(f: _Fields, shape: tuple[int, ...], _: str) -> Inferred:
    return Inferred(f.out, (math.prod(shape),), ())


def _dropout(f: _Fields, shape: tuple[int, ...], _: str) -> Inferred:
    f.number("rate", 0.5, low=0.0, high=1.0)
    return Inferred(f.out, shape, ())


def _activation(f: _Fields, shape: tuple[int, ...], _: str) -> Inferred:
    f.choice("activation", None, ACTIVATIONS)
    return Inferred(f.out, shape, ())


def _embedding(f: _Fields, shape: tuple[int, ...], _: str) -> Inferred:
    _rank(f, shape, tuple(range(1, 64)), "(sequence...)")
    vocab = f.integer("input_dim")
    dim = f.integer("output_dim")
    return Inferred(f.out, (*shape, dim), (WeightShape("embeddings", (vocab, dim), "embeddings"),))


def _rnn(gates: int, kind: str) -> Callable[[_Fields, tuple[int, ...], str], Inferred]:
    def infer(f: _Fields, shape: tuple[int, ...], defaults: str) -> Inferred:
        _rank(f, shape, (2,), "(timesteps, features)")
        units = f.integer("units")
        f.choice("activation", "tanh", ACTIVATIONS)
        if kind != "simple_rnn":
            # Keras 3 gates with sigmoid, TF.js 4.22 with hard_sigmoid.
            default = "sigmoid" if defaults == "keras" else "hard_sigmoid"
            f.choice("recurrent_activation", default, ACTIVATIONS)
        sequences = f.flag("return_sequences", False)
        use_bias = f.flag("use_bias", True)
        forget = kind == "lstm" and f.flag("unit_forget_bias", defaults == "keras")
        # Keras 3 defaults to reset_after=True (a (2, 3u) bias); TF.js 4.22 cannot run it.
        reset_after = kind == "gru" and f.flag("reset_after", defaults == "keras")
        width = gates * units
        weights = [
            WeightShape("kernel", (shape[-1], width), "kernel"),
            WeightShape("recurrent_kernel", (units, width), "recurrent"),
        ]
        if use_bias:
            bias = (2, width) if reset_after else (width,)
            weights.append(
                WeightShape("bias", bias, "bias", units if forget and use_bias else None)
            )
        return Inferred(f.out, (shape[0], units) if sequences else (units,), tuple(weights))

    return infer


def _normalization(batch: bool) -> Callable[[_Fields, tuple[int, ...], str], Inferred]:
    def infer(f: _Fields, shape: tuple[int, ...], _: str) -> Inferred:
        _rank(f, shape, tuple(range(1, 64)), "(..., features)")
        size = f.axis(shape)
        f.number("epsilon", 1e-3, low=0.0, high=1.0)
        if batch:
            f.number("momentum", 0.99, low=0.0, high=1.0)
        weights = []
        if f.flag("scale", True):
            weights.append(WeightShape("gamma", (size,), "gamma"))
        if f.flag("center", True):
            weights.append(WeightShape("beta", (size,), "beta"))
        if batch:
            weights.append(WeightShape("moving_mean", (size,), "moving_mean"))
            weights.append(WeightShape("moving_variance", (size,), "moving_variance"))
        return Inferred(f.out, shape, tuple(weights))

    return infer


@dataclass(frozen=True)
class LayerType:
    """One supported layer: its type key (the Keras name stem), Keras class and fields."""

    type: str
    class_name: str
    infer: Callable[[_Fields, tuple[int, ...], str], Inferred]
    # Config fields besides type and name (the *_initializer fields come from the weights).
    fields: tuple[str, ...]
    roles: tuple[str, ...] = ()


_CONV = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate")
_RNN = ("units", "activation", "return_sequences", "use_bias")
LAYER_TYPES: dict[str, LayerType] = {
    t.type: t
    for t in (
        LayerType(
            "dense", "Dense", _dense, ("units", "activation", "use_bias"), ("kernel", "bias")
        ),
        LayerType(
            "conv1d",
            "Conv1D",
            _conv(1),
            (*_CONV, "groups", "activation", "use_bias"),
            ("kernel", "bias"),
        ),
        LayerType(
            "conv2d",
            "Conv2D",
            _conv(2),
            (*_CONV, "groups", "activation", "use_bias"),
            ("kernel", "bias"),
        ),
        LayerType("flatten", "Flatten", _flatten, ()),
        LayerType("dropout", "Dropout", _dropout, ("rate",)),
        LayerType("activation", "Activation", _activation, ("activation",)),
        LayerType(
            "embedding", "Embedding", _embedding, ("input_dim", "output_dim"), ("embeddings",)
        ),
        LayerType(
            "simple_rnn", "SimpleRNN", _rnn(1, "simple_rnn"), _RNN, ("kernel", "recurrent", "bias")
        ),
        LayerType(
            "lstm",
            "LSTM",
            _rnn(4, "lstm"),
            (*_RNN, "recurrent_activation", "unit_forget_bias"),
            ("kernel", "recurrent", "bias"),
        ),
        LayerType(
            "gru",
            "GRU",
            _rnn(3, "gru"),
            (*_RNN, "recurrent_activation", "reset_after"),
            ("kernel", "recurrent", "bias"),
        ),
        LayerType(
            "batch_normalization",
            "BatchNormalization",
            _normalization(batch=True),
            ("axis", "epsilon", "momentum", "center", "scale"),
            ("gamma", "beta", "moving_mean", "moving_variance"),
        ),
        LayerType(
            "layer_normalization",
            "LayerNormalization",
            _normalization(batch=False),
            ("axis", "epsilon", "center", "scale"),
            ("gamma", "beta"),
        ),
    )
}
# Keras class names are accepted as types too ("Dense", "SimpleRNN").
_BY_CLASS = {t.class_name: t for t in LAYER_TYPES.values()}


def layer_type(value: object, loc: str) -> LayerType:
    found = _BY_CLASS.get(value) if isinstance(value, str) else None
    if isinstance(value, str) and found is None:
        found = LAYER_TYPES.get(value.lower())
    if found is None:
        raise ModelSpecError(
            f"{loc}.type", value, f"unknown layer type; supported: {', '.join(LAYER_TYPES)}"
        )
    return found


def initializer_field(role: str) -> str:
    """The config field of a weight role: ``kernel_initializer``, ``recurrent_initializer``."""
    return f"{role}_initializer"


def infer(
    kind: LayerType, raw: Mapping[str, Any], shape: tuple[int, ...], loc: str, defaults: str
) -> Inferred:
    """Check ``raw``'s fields against ``kind`` and infer its output shape and weights."""
    allowed = {"type", "name", *kind.fields, *(initializer_field(r) for r in kind.roles)}
    for key in raw:
        if key not in allowed:
            raise ModelSpecError(
                f"{loc}.{key}", raw[key], f"not a field of {kind.type}; fields: {sorted(allowed)}"
            )
    return kind.infer(_Fields(raw, loc), shape, defaults)
