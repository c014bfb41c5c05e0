"""Keras and TF.js topologies → the layer-list spec (same layer table, same plan).

``{"topology": T, "seed"?, "defaults"?}`` where ``T`` is Keras 3 ``model.to_json()``, Keras 2 /
tf.keras JSON, TF.js ``model.toJSON()`` (the object or its JSON string) or a whole TF.js
``model.json`` (``{"modelTopology": T, ...}``); ``Sequential`` or functional (``Functional``,
``Model``). Every refusal names the topology's own path
(``topology.config.layers[2].config.kernel_size``).

Read per layer: ``class_name`` (a type of the layer table), ``config`` (its fields; Keras 3
``module`` / ``registered_name`` / ``build_config`` are ignored, ``dtype`` must be float32),
``inbound_nodes`` (Keras 3 ``args`` with ``__keras_tensor__`` / ``keras_history``, or Keras 2
``[[["name", 0, 0, {}]]]``). Input shapes: ``InputLayer`` ``batch_shape`` (Keras 3) or
``batch_input_shape`` (Keras 2, TF.js), or a Sequential first layer's ``batch_input_shape`` /
``input_shape``. Not supported, each a clear 422: shared layers (a layer called twice, or a
``node_index`` > 0), layers with several outputs (``tensor_index`` > 0), nested models.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from app.initializers.schemes._common import TRUNCATED_STD
from app.models.errors import ModelSpecError, ModelTooLargeError
from app.models.graph import INPUT_DTYPES, NAME, NAME_RULE, Locs
from app.models.layers import layer_type

_BODY = ("topology", "seed", "defaults")
_MODELS = ("Sequential", "Functional", "Model")
# Config keys that change neither weights, shapes nor the model TF.js builds.
_IGNORED = ("batch_input_shape", "batch_shape", "input_shape", "batch_size",
            "implementation", "input_length", "sparse", "ragged", "optional")  # fmt: skip
# Config keys dropped at this value when the layer type has no such field (any other value
# goes on to the layer table, which refuses it: "not a field of ...").
_NOOP: dict[str, Any] = {
    "data_format": "channels_last",
    "quantization_config": None,
    "zero_output_for_mask": False,
    "synchronized": False,
    "renorm": False,
    "renorm_clipping": None,
    "renorm_momentum": 0.99,
    "rms_scaling": False,
    "groups": 1,  # Keras 2 DepthwiseConv2D and Conv2D/3DTranspose (its Conv base's field)
}
# Flags TF.js 4.22 writes null when not given: null is its default, false.
_NULL_FALSE = ("unit_forget_bias", "mask_zero")
_NESTED = ("layer", "backward_layer")  # wrappers' inner layers
_MAX_NESTING = 8
# TF.js's default kernel initializer as its toJSON writes it: a normal truncated at 2 std
# without Keras's 0.8796 correction, which only ``defaults: tfjs`` draws exactly.
_TFJS_GLOROT_NORMAL = {"scale": 1, "mode": "fan_avg", "distribution": "normal", "seed": None}


def _load(value: Any, max_bytes: int | None) -> tuple[Mapping[str, Any], str]:
    loc = "topology"
    if isinstance(value, str):
        size = len(value.encode())
        if max_bytes is not None and size > max_bytes:
            raise ModelTooLargeError(loc, size, f"{size} bytes > the limit of {max_bytes}")
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ModelSpecError(loc, value[:80], f"malformed JSON: {exc}") from exc
    elif max_bytes is not None:
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (254)
            raise ModelSpecError(loc, None, f"not a model topology: {exc}") from exc
        if size > max_bytes:
            raise ModelTooLargeError(loc, size, f"{size} bytes > the limit of {max_bytes}")
    if isinstance(value, Mapping) and "modelTopology" in value:
        value, loc = value["modelTopology"], f"{loc}.modelTopology"
        # a TF.js model.json may nest Keras's {"model_config": ...}
        if isinstance(value, Mapping) and "model_config" in value:
            value, loc = value["model_config"], f"{loc}.model_config"
    if not isinstance(value, Mapping) or value.get("class_name") not in _MODELS:
        got = value.get("class_name") if isinstance(value, Mapping) else value
        raise ModelSpecError(
            f"{loc}.class_name", got, f"must be a model topology: one of {', '.join(_MODELS)}"
        )
    return value, loc


def _dtype(value: Any, loc: str) -> None:
    """float32, as a string or a Keras 3 DTypePolicy / Keras 2 Policy object."""
    name = value
    if isinstance(value, Mapping):
        config = value.get("config")
        name = config.get("name") if isinstance(config, Mapping) else config
    if not (name is None or name == "float32"):
        raise ModelSpecError(loc, value, "only float32 models are supported")


def _batch_shape(config: Mapping[str, Any], loc: str) -> list[Any] | None:
    for key in ("batch_shape", "batch_input_shape"):
        if config.get(key) is not None:
            value = config[key]
            if not isinstance(value, list) or len(value) < 2:
                raise ModelSpecError(f"{loc}.{key}", value, "must be [batch, dims...]")
            return value[1:]
    if config.get("input_shape") is not None:  # Keras 2 layer argument, batch excluded
        value = config["input_shape"]
        if not isinstance(value, list):
            raise ModelSpecError(f"{loc}.input_shape", value, "must be a list of dimensions")
        return value
    return None


def _input(entry: Mapping[str, Any], loc: str) -> dict[str, Any]:
    config = entry.get("config")
    if not isinstance(config, Mapping):
        raise ModelSpecError(f"{loc}.config", config, "must be an object")
    cloc = f"{loc}.config"
    dtype = config.get("dtype") or "float32"
    if dtype not in INPUT_DTYPES:
        raise ModelSpecError(f"{cloc}.dtype", dtype, f"must be one of {', '.join(INPUT_DTYPES)}")
    for key in ("sparse", "ragged"):
        if config.get(key):
            raise ModelSpecError(f"{cloc}.{key}", config[key], f"{key} inputs are not supported")
    shape = _batch_shape(config, cloc)
    if shape is None:
        raise ModelSpecError(f"{cloc}.batch_shape", None, "is required (the input's shape)")
    name = config.get("name", entry.get("name"))
    if not isinstance(name, str) or not NAME.match(name):
        raise ModelSpecError(f"{cloc}.name", name, NAME_RULE)
    out = {"name": name, "shape": shape}
    return {**out, "dtype": dtype} if dtype != "float32" else out


def _initializer(value: Any, loc: str, tfjs: bool) -> Any:
    """An initializer as the engine reads it: a Keras 2 ``dtype`` in its config dropped
    (float32 only); in a TF.js topology, VarianceScaling's ``normal`` as TF.js means it (its
    default glorotNormal left to ``defaults: tfjs``, which draws exactly that)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("config"), Mapping):
        return value
    config = dict(value["config"])
    _dtype(config.pop("dtype", None), f"{loc}.config.dtype")
    if tfjs and value.get("class_name") == "VarianceScaling" and config == _TFJS_GLOROT_NORMAL:
        return None
    if (
        tfjs
        and value.get("class_name") == "VarianceScaling"
        and config.get("distribution") == "normal"
    ):
        # TF.js's "normal": truncated at 2 std with std sqrt(scale / n), no 0.8796 correction;
        # Keras's truncated_normal divides by it, so the scale carries its square.
        scale = config.get("scale", 1.0)
        if isinstance(scale, int | float) and not isinstance(scale, bool):
            config.update(distribution="truncated_normal", scale=scale * TRUNCATED_STD**2)
    return {**value, "config": config}


def _layer(entry: Any, loc: str, tfjs: bool, depth: int = 0) -> dict[str, Any]:
    """One layer entry → a layer-list layer (``{"type", "name", fields...}``)."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("config"), Mapping):
        raise ModelSpecError(loc, entry, "must be {class_name, config}")
    if depth > _MAX_NESTING:
        raise ModelSpecError(loc, None, f"wrappers nest over {_MAX_NESTING} deep")
    class_name = entry.get("class_name")
    if class_name in _MODELS:
        raise ModelSpecError(
            f"{loc}.class_name",
            class_name,
            "nested models are not supported: post the inner model's layers in the outer one",
        )
    try:
        kind = layer_type(class_name, loc)
    except ModelSpecError as exc:
        raise ModelSpecError(f"{loc}.class_name", class_name, exc.msg) from exc
    raw: dict[str, Any] = {"type": class_name}
    if entry["config"].get("name") is None and entry.get("name") is not None:
        raw["name"] = entry["name"]  # what inbound_nodes call it
    cloc = f"{loc}.config"
    for key, value in entry["config"].items():
        if key == "dtype":
            _dtype(value, f"{cloc}.dtype")
        elif key in _IGNORED or (key in _NOOP and key not in kind.fields and value == _NOOP[key]):
            continue
        elif key == "seed" and key not in kind.fields:
            continue  # an RNN's (of its dropout masks): TF.js 4.22's RNNs take none
        elif (
            key == "zero_output_for_mask"
            and depth > 0
            and value == entry["config"].get("return_sequences", False)
        ):
            continue  # Keras's Bidirectional sets it from return_sequences itself
        elif key in _NESTED and isinstance(value, Mapping):
            raw[key] = _layer(value, f"{cloc}.{key}", tfjs, depth + 1)
        elif key.endswith("_initializer"):
            value = _initializer(value, f"{cloc}.{key}", tfjs)
            if value is not None:
                raw[key] = value
        elif key == "axis" and isinstance(value, list) and len(value) == 1:
            raw[key] = value[0]  # Keras 3 LayerNormalization writes [-1]
        elif key in _NULL_FALSE and value is None:
            raw[key] = False
        else:
            raw[key] = value
    return raw


def _frozen(entry: Any) -> Any:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("config"), Mapping):
        return entry
    return {**entry, "config": {**entry["config"], "trainable": False}}


def _tensors(value: Any) -> Iterator[Any]:
    """Every ``__keras_tensor__``'s ``keras_history`` in a Keras 3 node's args, in order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping) and item.get("class_name") == "__keras_tensor__":
            config = item.get("config")
            yield config.get("keras_history") if isinstance(config, Mapping) else None
        elif isinstance(item, Mapping):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _ref(item: Any, loc: str) -> str:
    """``[name, node_index, tensor_index, ...]`` → ``name`` (node and tensor 0 only)."""
    if not isinstance(item, list) or len(item) < 3 or not isinstance(item[0], str):
        raise ModelSpecError(loc, item, "must be [layer_name, node_index, tensor_index]")
    if item[1] != 0:
        raise ModelSpecError(
            loc, item, f"calls layer {item[0]!r} a second time (node {item[1]}): shared layers "
            "are not supported (Keras allows them; post one layer per call)",
        )  # fmt: skip
    if item[2] != 0:
        raise ModelSpecError(
            loc, item, f"layers with several outputs ({item[0]!r}) are not supported"
        )
    return item[0]


def _inbound(entry: Mapping[str, Any], loc: str) -> list[str]:
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ModelSpecError(loc, nodes, "must list the layer's one call")
    if len(nodes) > 1:
        raise ModelSpecError(
            loc, len(nodes), "a layer called more than once (a shared layer) is not supported"
        )
    node = nodes[0]
    if isinstance(node, Mapping):  # Keras 3: {"args": [...], "kwargs": {...}}
        kwargs = node.get("kwargs") or {}
        # None is no argument; Keras 3 writes ``training: false`` for the dropout family (their
        # call's default, overridden by the model's own training flag): no argument either.
        # ``is False``: 0 == False, and ``training: 0`` is not what Keras writes.
        if not isinstance(kwargs, Mapping) or any(
            v is not None and not (k == "training" and v is False) for k, v in kwargs.items()
        ):
            raise ModelSpecError(f"{loc}[0].kwargs", kwargs, "call arguments are not supported")
        refs = [_ref(h, f"{loc}[0].args") for h in _tensors(node.get("args"))]
    elif isinstance(node, list):  # Keras 2 / TF.js: [[name, node_index, tensor_index, kwargs]]
        refs = [_ref(item, f"{loc}[0][{j}]") for j, item in enumerate(node)]
        for j, item in enumerate(node):
            if len(item) > 3 and item[3]:
                raise ModelSpecError(
                    f"{loc}[0][{j}][3]", item[3], "call arguments are not supported"
                )
    else:
        raise ModelSpecError(loc, nodes, "must be Keras 3 {args, kwargs} or Keras 2 lists")
    if not refs:
        raise ModelSpecError(loc, nodes, "names no input tensor")
    return refs


def _io(value: Any, loc: str) -> list[str]:
    """``input_layers`` / ``output_layers``: ``[name, 0, 0]`` (Keras 3, one) or a list of them."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ModelSpecError(loc, value, "must list [layer_name, node_index, tensor_index]")
    return [_ref(item, f"{loc}[{j}]") for j, item in enumerate(value)]


def translate(
    body: Mapping[str, Any], max_bytes: int | None, max_layers: int
) -> tuple[dict[str, Any], Locs]:
    """The layer-list body of ``{"topology": ...}``, and where each part came from."""
    for key in body:
        if key not in _BODY:
            raise ModelSpecError(key, body[key], f"unknown field with a topology; fields: {_BODY}")
    topo, loc = _load(body["topology"], max_bytes)
    out: dict[str, Any] = {k: body[k] for k in ("seed", "defaults") if k in body}
    # TF.js model.toJSON(): "tfjs-layers 4.22.0"; its missing fields mean TF.js's defaults.
    tfjs = str(topo.get("keras_version", "")).startswith("tfjs")
    if tfjs:
        out.setdefault("defaults", "tfjs")
    config = topo.get("config")
    if isinstance(config, list):  # Keras 2.0-2.2 Sequential: the layer list itself
        config = {"layers": config}
    loc = f"{loc}.config"
    if not isinstance(config, Mapping) or not isinstance(config.get("layers"), list):
        raise ModelSpecError(f"{loc}.layers", None, "must be the model's list of layers")
    entries = config["layers"]
    if len(entries) > max_layers:
        raise ModelTooLargeError(
            f"{loc}.layers", len(entries), f"{len(entries)} layers > the limit of {max_layers}"
        )
    if config.get("name") is not None:
        out["name"] = config["name"]
    _dtype(config.get("dtype"), f"{loc}.dtype")
    locs = [f"{loc}.layers[{i}]" for i in range(len(entries))]
    if config.get("trainable") is False:  # a frozen model: every layer frozen (Keras)
        entries = [_frozen(entry) for entry in entries]
    if topo["class_name"] == "Sequential":
        return _sequential(out, config, entries, locs, loc, tfjs)
    inputs, layers, kept = [], [], []
    for i, entry in enumerate(entries):
        if isinstance(entry, Mapping) and entry.get("class_name") == "InputLayer":
            inputs.append((_input(entry, locs[i]), locs[i]))
            continue
        raw = _layer(entry, locs[i], tfjs)
        raw["inbound"] = _inbound(entry, f"{locs[i]}.inbound_nodes")
        layers.append(raw)
        kept.append(locs[i])
    out["layers"] = layers
    names = _io(config.get("input_layers"), f"{loc}.input_layers")
    by_name = {item["name"]: i for i, (item, _) in enumerate(inputs)}
    for j, name in enumerate(names):
        if name not in by_name:
            raise ModelSpecError(f"{loc}.input_layers[{j}]", name, "names no InputLayer")
    out["inputs"] = [inputs[by_name[n]][0] for n in names]
    out["outputs"] = _io(config.get("output_layers"), f"{loc}.output_layers")
    return out, Locs(
        [f"{x}.config" for x in kept],
        [f"{inputs[by_name[n]][1]}.config" for n in names],
        [f"{x}.inbound_nodes" for x in kept],
        f"{loc}.output_layers",
    )


def _sequential(
    out: dict[str, Any],
    config: Mapping[str, Any],
    entries: list[Any],
    locs: list[str],
    loc: str,
    tfjs: bool,
) -> tuple[dict[str, Any], Locs]:
    first = entries[0] if entries else None
    shape_loc = f"{locs[0]}.config" if entries else f"{loc}.layers"
    inputs: list[str] = []
    if isinstance(first, Mapping) and first.get("class_name") == "InputLayer":
        given_input = _input(first, locs[0])
        shape = given_input["shape"]
        if "dtype" in given_input:  # int32 ids: only the graph form carries an input's dtype
            out["inputs"] = [given_input]
            inputs = [f"{locs[0]}.config"]
        entries, locs = entries[1:], locs[1:]
    else:
        given = first.get("config") if isinstance(first, Mapping) else None
        shape = _batch_shape(given, shape_loc) if isinstance(given, Mapping) else None
        if shape is None and isinstance(config.get("build_input_shape"), list):
            shape = config["build_input_shape"][1:]
            shape_loc = f"{loc}.build_input_shape"
        if shape is None:
            raise ModelSpecError(
                f"{shape_loc}.batch_input_shape",
                None,
                "missing input shape: an InputLayer or the first layer's batch_input_shape",
            )
    if not inputs:
        out["input_shape"] = shape
    out["layers"] = [_layer(entry, at, tfjs) for entry, at in zip(entries, locs, strict=True)]
    return out, Locs(
        [f"{x}.config" for x in locs], inputs, [f"{x}.inbound_nodes" for x in locs],
        input_shape=shape_loc,
    )  # fmt: skip
