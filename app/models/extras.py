"""Layer config fields that change neither weights nor shapes but do change the model a
framework builds (training behaviour): carried in the canonical spec and into model.json.

Carried (only when not the default, so the canonical spec of a layer without them is as
before): ``trainable: false``; ``<weight>_regularizer`` and ``activity_regularizer`` (L1, L2,
L1L2: written as TF.js 4.22's ``L1L2``); ``<weight>_constraint`` (MaxNorm, NonNeg, UnitNorm,
MinMaxNorm); recurrent ``dropout``, ``recurrent_dropout``, ``go_backwards``, ``unroll``;
Embedding ``mask_zero``. Refused (they change what the model
computes or returns, which this service does not model): recurrent ``stateful``,
``return_state``, ``time_major``. :mod:`app.models.topology` drops what changes nothing
(``dtype: float32``, an RNN's ``seed``, ``null`` regularizers). The dropout family's
``noise_shape`` and ``seed`` are fields of those layers (:mod:`app.models.layers.core`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.models.errors import ModelSpecError
from app.models.layers import LayerType

RECURRENT = ("simple_rnn", "lstm", "gru")
# Weight roles Keras gives a regularizer and a constraint (not BatchNormalization's moving_*).
_REGULARIZED = ("kernel", "recurrent", "bias", "embeddings", "gamma", "beta", "depthwise",
                "pointwise", "alpha")  # fmt: skip
_REGULARIZERS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}
_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "MaxNorm": {"max_value": 2.0, "axis": 0},
    "NonNeg": {},
    "UnitNorm": {"axis": 0},
    "MinMaxNorm": {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0},
}
# Refused when true: the model would compute or return something else.
REFUSED = {
    "stateful": "a stateful RNN (its state carried across batches) is not supported",
    "return_state": "return_state (a layer with several outputs) is not supported",
    "time_major": "time_major inputs are not supported",
}


def keys(kind: LayerType) -> tuple[str, ...]:
    """The carried fields a layer of ``kind`` may have."""
    roles = [r for r in kind.roles if r in _REGULARIZED]
    out = ["trainable", "activity_regularizer"] if kind.roles else ["trainable"]
    out += [f"{r}_regularizer" for r in roles] + [f"{r}_constraint" for r in roles]
    if kind.type in RECURRENT:
        out += ["dropout", "recurrent_dropout", "go_backwards", "unroll"]
    if kind.type == "embedding":
        out.append("mask_zero")
    return tuple(out)


def _number(value: Any, loc: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ModelSpecError(loc, value, f"must be a number in [{low}, {high}]")
    return float(value)


def _regularizer(value: Any, loc: str) -> dict[str, Any]:
    name = value.get("class_name") if isinstance(value, Mapping) else value
    config = value.get("config", {}) if isinstance(value, Mapping) else {}
    if not isinstance(name, str) or name not in _REGULARIZERS or not isinstance(config, Mapping):
        raise ModelSpecError(loc, value, f"must be a regularizer: {', '.join(_REGULARIZERS)}")
    out = {"l1": 0.0, "l2": 0.0}
    for key in _REGULARIZERS[name]:
        # Keras 3's L1(), L2() default to 0.01; L1L2() to 0.
        default = 0.0 if name == "L1L2" else 0.01
        out[key] = _number(config.get(key, default), f"{loc}.config.{key}", 0.0, 1e6)
    return {"class_name": "L1L2", "config": out}


def _constraint(value: Any, loc: str) -> dict[str, Any]:
    name = value.get("class_name") if isinstance(value, Mapping) else value
    config = value.get("config", {}) if isinstance(value, Mapping) else {}
    if not isinstance(name, str) or name not in _CONSTRAINTS or not isinstance(config, Mapping):
        raise ModelSpecError(loc, value, f"must be a constraint: {', '.join(_CONSTRAINTS)}")
    out: dict[str, Any] = {}
    for key, default in _CONSTRAINTS[name].items():
        got = config.get(key, default)
        if key == "axis":
            ok = isinstance(got, int) and not isinstance(got, bool)
            if not ok and not (isinstance(got, list) and all(isinstance(a, int) for a in got)):
                raise ModelSpecError(f"{loc}.config.axis", got, "must be an integer or a list")
            out[key] = got
        else:
            out[key] = _number(got, f"{loc}.config.{key}", 0.0, 1e9)
    return {"class_name": name, "config": out}


def split(
    kind: LayerType, raw: Mapping[str, Any], loc: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``raw`` without its carried fields (for :func:`app.models.layers.infer`), and the
    carried fields in canonical form (defaults left out)."""
    allowed = keys(kind)
    rest: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        if key in REFUSED and kind.type in RECURRENT:
            if value is not False:
                raise ModelSpecError(f"{loc}.{key}", value, REFUSED[key])
            continue
        if key not in allowed:
            rest[key] = value
            continue
        at = f"{loc}.{key}"
        if key in ("trainable", "go_backwards", "unroll", "mask_zero"):
            if not isinstance(value, bool):
                raise ModelSpecError(at, value, "must be true or false")
            if value is (key == "trainable"):
                continue
            kept[key] = value
        elif value is None:
            continue
        elif key.endswith("_regularizer"):
            kept[key] = _regularizer(value, at)
        elif key.endswith("_constraint"):
            kept[key] = _constraint(value, at)
        else:  # dropout, recurrent_dropout
            rate = _number(value, at, 0.0, 1.0)
            if rate:
                kept[key] = rate
    return rest, kept
