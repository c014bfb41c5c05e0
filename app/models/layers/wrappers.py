"""The wrappers: TimeDistributed (any layer of the table, applied to every timestep) and
Bidirectional (an RNN run forwards and backwards, outputs merged).

The inner layer is a nested layer object (``"layer": {"type": "lstm", "units": 8}``) with its
own fields and initializers; its weights' initializers live there (``WeightShape.owner``).
Names, as Keras 3 and TF.js 4.22 give them (``bidirectional``'s inner ``lstm``):

- Bidirectional: ``forward_lstm/kernel`` ... then ``backward_lstm/kernel`` ... (Keras 3 paths
  without the cell; TF.js the same); a given ``backward_layer`` keeps its own name in Keras.
- TimeDistributed: Keras 3 ``dense/kernel`` (the inner layer's name), TF.js ``kernel``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from app.models.layers import recurrent
from app.models.layers.fields import Fields, Inferred, Shape, WeightShape
from app.models.layers.table import LayerType
from app.models.layers.tfjs import tfjs_layer, unsupported

_RNNS = tuple(t.type for t in recurrent.LAYERS)
_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _inner(
    f: Fields, key: str, shape: Shape, defaults: str, rnn: bool
) -> tuple[dict[str, Any], tuple[WeightShape, ...], Inferred]:
    """The nested layer at ``key``: its canonical config (``type``, ``name``, fields), its
    weights (owned by ``key``) and what it infers from ``shape``."""
    # The package imports this module: its lookup and inference are read when called.
    from app.models import extras
    from app.models.layers import infer, layer_type

    raw = f.raw.get(key)
    if not isinstance(raw, Mapping):
        raise f.fail(key, "must be a layer object with a type")
    loc = f"{f.loc}.{key}"
    kind = layer_type(raw.get("type"), loc)
    if rnn and kind.type not in _RNNS:
        raise f.fail(key, f"must be a recurrent layer ({', '.join(_RNNS)})")
    # Fields a topology carries (trainable, regularizers, ...) go through as on any layer.
    fields, kept = extras.split(kind, raw, loc)
    result = infer(kind, fields, (shape,), loc, defaults)
    if result.more_outputs:
        raise f.fail(key, "must have a single output")
    name = raw.get("name") or kind.type
    config = {"type": kind.type, "name": name, **result.config, **kept}
    f.out[key] = config
    weights = tuple(replace(w, owner=(key, *w.owner)) for w in result.weights)
    return config, weights, result


def _time_distributed(f: Fields, shape: Shape, defaults: str) -> Inferred:
    f.rank(shape, tuple(range(2, 64)), "(timesteps, ...)")
    config, weights, result = _inner(f, "layer", shape[1:], defaults, rnn=False)
    named = tuple(
        replace(w, name=f"{config['name']}/{w.name}", tfjs_name=w.tfjs_name or w.name)
        for w in weights
    )
    return Inferred(f.out, (shape[0], *result.output_shape), named)


def _strip(name: str) -> str:
    return name[len("forward_") :] if name.startswith("forward_") else name


def _sides(name: str) -> tuple[str, str]:
    """A Bidirectional's two layers, named from its inner layer's ``name`` as Keras 3 and TF.js
    4.22 name them: ``forward_<n>``, ``backward_<n>``, ``n`` the name without the ``forward_``
    Keras 3's ``to_json`` writes it with."""
    return f"forward_{_strip(name)}", f"backward_{_strip(name)}"


def _bidirectional(f: Fields, shape: Shape, defaults: str) -> Inferred:
    fwd, fwd_weights, fwd_result = _inner(f, "layer", shape, defaults, rnn=True)
    mode = f.raw.get("merge_mode", "concat")
    if mode not in _MERGE_MODES:
        raise f.fail("merge_mode", "must be one of concat, sum, mul, ave or null")
    f.out["merge_mode"] = mode
    name = fwd["name"]

    def renamed(ws: tuple[WeightShape, ...], keras: str, tfjs: str) -> list[WeightShape]:
        return [
            replace(w, name=f"{keras}/{w.name}", tfjs_name=f"{tfjs}/{w.tfjs_name or w.name}")
            for w in ws
        ]

    # TF.js's names too: model.json's inner layer is named without the forward_ (Keras 3
    # writes the layer as forward_<name>), and TF.js prefixes forward_ / backward_ itself.
    forward, backward = _sides(name)
    weights = renamed(fwd_weights, forward, forward)
    if f.raw.get("backward_layer") is None:
        f.out["backward_layer"] = None
        weights += renamed(fwd_weights, backward, backward)
    else:
        bwd, bwd_weights, bwd_result = _inner(f, "backward_layer", shape, defaults, rnn=True)
        if bwd["go_backwards"] == fwd["go_backwards"]:
            raise f.fail("backward_layer", "must have go_backwards opposite to the layer's")
        if bwd_result.output_shape != fwd_result.output_shape:
            # Keras 3 sizes the merged output from the forward layer alone: a backward
            # layer of another size builds a model whose next layer does not fit.
            raise f.fail(
                "backward_layer",
                f"must give the layer's output shape {list(fwd_result.output_shape)}; "
                f"gives {list(bwd_result.output_shape)}",
            )
        # TF.js 4.22 builds its own mirror of the layer (model.json refuses a backward_layer
        # that is not one): Keras names it as given, TF.js backward_<the layer's name>.
        weights += renamed(bwd_weights, bwd["name"], backward)
    out = fwd_result.output_shape
    if mode is None:
        return Inferred(f.out, out, tuple(weights), (out,))
    if mode == "concat":
        units = out[-1]
        return Inferred(f.out, (*out[:-1], None if units is None else 2 * units), tuple(weights))
    return Inferred(f.out, out, tuple(weights))


def _tfjs_inner(config: dict[str, Any], key: str, loc: str, shape: Shape) -> None:
    from app.models.layers import layer_type

    inner, at = config[key], f"{loc}.{key}"
    config[key] = tfjs_layer(layer_type(inner["type"], at), inner, at, (shape,))


def _tfjs_time_distributed(config: dict[str, Any], loc: str, shapes: tuple[Shape, ...]) -> None:
    _tfjs_inner(config, "layer", loc, shapes[0][1:])  # the inner layer sees one timestep


def _mirrors(forward: dict[str, Any], backward: dict[str, Any]) -> bool:
    """Whether ``backward`` is the layer TF.js 4.22 builds itself: ``forward`` going the other
    way, named ``backward_<name>`` (what Keras 3's ``to_json`` always writes, the layer
    itself then named ``forward_<name>``). Initializers
    differ by seed only, and TF.js never runs them (the weights are loaded)."""

    def rest(c: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v
            for k, v in c.items()
            if k not in ("name", "go_backwards") and not k.endswith("_initializer")
        }

    return (
        backward.get("name")
        in (f"backward_{forward.get('name')}", _sides(str(forward.get("name")))[1])
        and backward.get("go_backwards") != forward.get("go_backwards", False)
        and rest(forward) == rest(backward)
    )


def _tfjs_bidirectional(config: dict[str, Any], loc: str, shapes: tuple[Shape, ...]) -> None:
    backward = config["backward_layer"]
    if backward is not None and not _mirrors(config["layer"], backward):
        raise unsupported(
            f"{loc}.backward_layer",
            config["backward_layer"]["name"],
            config,
            "TF.js 4.22 Bidirectional ignores backward_layer (it mirrors the layer)",
        )
    if config["merge_mode"] is None:
        raise unsupported(
            f"{loc}.merge_mode",
            None,
            config,
            "TF.js 4.22's Sequential model takes single-output layers only",
        )
    del config["backward_layer"]
    config["layer"]["name"] = _strip(config["layer"]["name"])
    _tfjs_inner(config, "layer", loc, shapes[0])


LAYERS: tuple[LayerType, ...] = (
    LayerType(
        "time_distributed",
        "TimeDistributed",
        _time_distributed,
        ("layer",),
        tfjs=_tfjs_time_distributed,
    ),
    LayerType(
        "bidirectional",
        "Bidirectional",
        _bidirectional,
        ("layer", "merge_mode", "backward_layer"),
        tfjs=_tfjs_bidirectional,
    ),
)
