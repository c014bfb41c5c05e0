"""The recurrent layers: SimpleRNN, LSTM (gates i, f, c, o), GRU (gates z, r, h)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.models.layers.fields import ACTIVATIONS, Fields, Inferred, Shape, WeightShape
from app.models.layers.table import LayerType
from app.models.layers.tfjs import unsupported


def _rnn(gates: int, kind: str) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, defaults: str) -> Inferred:
        f.rank(shape, (2,), "(timesteps, features)")
        features = f.known(shape, -1, "features (last)")
        units = f.integer("units")
        f.choice("activation", "tanh", ACTIVATIONS)
        if kind != "simple_rnn":
            # Keras 3 gates with sigmoid, TF.js 4.22 with hard_sigmoid.
            default = "sigmoid" if defaults == "keras" else "hard_sigmoid"
            f.choice("recurrent_activation", default, ACTIVATIONS)
        sequences = f.flag("return_sequences", False)
        f.flag("go_backwards", False)
        use_bias = f.flag("use_bias", True)
        forget = kind == "lstm" and f.flag("unit_forget_bias", defaults == "keras")
        # Keras 3 defaults to reset_after=True (a (2, 3u) bias); TF.js 4.22 cannot run it.
        reset_after = kind == "gru" and f.flag("reset_after", defaults == "keras")
        width = gates * units
        weights = [
            WeightShape("kernel", (features, width), "kernel"),
            WeightShape("recurrent_kernel", (units, width), "recurrent"),
        ]
        if use_bias:
            bias = (2, width) if reset_after else (width,)
            weights.append(WeightShape("bias", bias, "bias", units if forget else None))
        return Inferred(f.out, (shape[0], units) if sequences else (units,), tuple(weights))

    return infer


def _tfjs_gru(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
    if config["reset_after"]:
        raise unsupported(
            f"{loc}.reset_after",
            True,
            config,
            "TF.js 4.22 cannot run a GRU with reset_after: true; post it with reset_after: false",
        )


_RNN = ("units", "activation", "return_sequences", "go_backwards", "use_bias")
_ROLES = ("kernel", "recurrent", "bias")
LAYERS: tuple[LayerType, ...] = (
    LayerType("simple_rnn", "SimpleRNN", _rnn(1, "simple_rnn"), _RNN, _ROLES),
    LayerType(
        "lstm", "LSTM", _rnn(4, "lstm"), (*_RNN, "recurrent_activation", "unit_forget_bias"), _ROLES
    ),
    LayerType(
        "gru",
        "GRU",
        _rnn(3, "gru"),
        (*_RNN, "recurrent_activation", "reset_after"),
        _ROLES,
        tfjs=_tfjs_gru,
    ),
)
