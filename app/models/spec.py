"""The layer-list model spec: validation, names, per-weight initializers and seeds, the id.

``plan_model(body, limits)`` checks everything (fields, shapes, limits, every weight against
its initializer) without allocating, and returns a :class:`ModelPlan` whose ``spec`` is the
canonical form: every field filled in, every initializer resolved to Keras form. Planning the
canonical spec again gives the same plan, so it is all the store keeps.

Seeds. Weight ``i`` (0-based, manifest order) named ``n`` (``dense/kernel``) of a model with
seed ``s`` gets ``BLAKE2b-32("initlab-model:{s}:{i}:{n}")`` read little-endian (an integer in
``[0, 2**32 - 1]``), unless its initializer reference carries its own seed (Keras does the
same: a seeded initializer is used as is).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.initializers import Initializer, InitializerError, compute_fans, resolve
from app.models import extras, graph
from app.models.errors import ModelSpecError, ModelTooLargeError
from app.models.layers import (
    LayerType,
    Shape,
    WeightShape,
    infer,
    initializer_field,
    layer_type,
)
from app.models.topology import translate

SEED_MAX = 2**32 - 1
DEFAULTS: tuple[str, ...] = ("keras", "tfjs")
_FIELDS = ("name", "input_shape", "inputs", "layers", "outputs", "seed", "defaults")

# The framework defaults per weight role (tfjs "glorot_normal": TF.js's own meaning, below).
_DEFAULT_REFS: dict[str, dict[str, Any]] = {
    "keras": {
        "kernel": "glorot_uniform",
        "recurrent": "orthogonal",
        "bias": "zeros",
        "embeddings": {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05}},
        "gamma": "ones",
        "beta": "zeros",
        "moving_mean": "zeros",
        "moving_variance": "ones",
        "depthwise": "glorot_uniform",
        "pointwise": "glorot_uniform",
        "alpha": "zeros",
    },
}
# TF.js 4.22: BaseConv's glorotNormal for kernels and DepthwiseConv2D's depthwise kernel.
_DEFAULT_REFS["tfjs"] = {
    **_DEFAULT_REFS["keras"],
    "kernel": "tfjs_glorot_normal",
    "depthwise": "tfjs_glorot_normal",
}


@dataclass(frozen=True)
class Limits:
    """What one model may ask for (the INITLAB_MAX_MODEL_* settings and the tensor limits)."""

    max_params: int
    max_layers: int
    max_weight_elements: int
    max_orthogonal_work: int
    max_rank: int
    max_depth: int | None = None  # None: as deep as the layer count allows
    max_topology_bytes: int | None = None  # None: any size (the request body limit holds)


@dataclass(frozen=True)
class Weight:
    """One weight of the model, in manifest order."""

    name: str  # "dense/kernel"
    shape: tuple[int, ...]
    field: str  # the layer's config field of its initializer ("recurrent_initializer")
    initializer: Initializer
    seed: int
    forget_units: int | None  # LSTM unit_forget_bias: bias[units:2*units] = 1
    owner: tuple[str, ...] = ()  # config keys down to the dict holding ``field`` (wrappers)
    tfjs_name: str = ""  # TF.js 4.22's name where it differs (model.json), else ``name``

    @property
    def tfjs(self) -> str:
        return self.tfjs_name or self.name

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def echo(self) -> dict[str, Any]:
        """The manifest entry: the initializer in Keras form with this weight's seed."""
        entry: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": "float32",
            "initializer": self.initializer.keras_config(self.seed),
        }
        if self.forget_units is not None:
            entry["unit_forget_bias"] = True
        return entry


@dataclass(frozen=True)
class Layer:
    kind: LayerType
    name: str
    config: dict[str, Any]  # canonical: fields, name, type and initializers
    input_shapes: tuple[Shape, ...]  # one per inbound layer / input
    output_shape: Shape
    weights: tuple[Weight, ...]
    inbound: tuple[str, ...] = ()  # the layers or inputs it is called on, in call order
    more_outputs: tuple[Shape, ...] = ()  # after the first (Bidirectional, merge_mode null)

    @property
    def input_shape(self) -> Shape:
        return self.input_shapes[0]

    @property
    def output_shapes(self) -> tuple[Shape, ...]:
        return (self.output_shape, *self.more_outputs)


@dataclass(frozen=True)
class ModelPlan:
    spec: dict[str, Any]
    seed: int
    layers: tuple[Layer, ...]  # Keras's order (graph.py)
    inputs: tuple[graph.Input, ...] = ()
    outputs: tuple[str, ...] = ()  # the output layers' names
    name: str | None = None  # the model's own name (a topology's), kept for model.json

    @property
    def sequential(self) -> bool:
        """A chain from one float32 input to one output: written as a TF.js Sequential."""
        chain = [(layer.name, layer.inbound) for layer in self.layers]
        names = [x.name for x in self.inputs]
        floats = all(x.dtype == "float32" for x in self.inputs)
        return floats and graph.is_chain(names, chain, self.outputs)

    @property
    def output_shapes(self) -> list[Shape]:
        """Every model output's shape, batch excluded, in Keras's ``model.outputs`` order:
        the output layers in ``outputs`` order, each with all its outputs."""
        by_name = {layer.name: layer.output_shapes for layer in self.layers}
        return [shape for name in self.outputs for shape in by_name[name]]

    @property
    def weights(self) -> list[Weight]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def params(self) -> int:
        return sum(w.size for w in self.weights)

    @property
    def nbytes(self) -> int:
        return 4 * self.params

    @property
    def id(self) -> str:
        """Hash of the canonical spec and the seed: same spec and seed, same id, any process."""
        doc = orjson.dumps({"spec": self.spec, "seed": self.seed}, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(doc).hexdigest()[:32]


def weight_seed(seed: int, index: int, name: str) -> int:
    """The derived seed of weight ``index`` named ``name`` (see the module docstring)."""
    digest = hashlib.blake2b(f"initlab-model:{seed}:{index}:{name}".encode(), digest_size=4)
    return int.from_bytes(digest.digest(), "little")


def _seed(body: Mapping[str, Any]) -> int:
    value = body.get("seed")
    if value is None:
        return secrets.randbelow(SEED_MAX + 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise ModelSpecError("seed", value, "must be an integer in [0, 2**32 - 1]")
    return value


# A wrapper's nested layers, in the order Keras creates them (before the wrapper itself).
_NESTED = ("layer", "backward_layer")
MAX_NESTING = 4  # wrappers in wrappers (TimeDistributed(Bidirectional(LSTM)) is 2)


def _walk(
    raw: Mapping[str, Any], loc: str, depth: int = 0
) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Every layer object in ``raw``, nested ones first (Keras's creation order)."""
    for key in _NESTED:
        inner = raw.get(key)
        if isinstance(inner, Mapping):
            if depth == MAX_NESTING:
                raise ModelSpecError(
                    f"{loc}.{key}", inner.get("type"), f"nests layers more than {MAX_NESTING} deep"
                )
            yield from _walk(inner, f"{loc}.{key}", depth + 1)
    yield raw, loc


def _check_name(name: Any, loc: str) -> None:
    if not isinstance(name, str) or not graph.NAME.match(name):
        raise ModelSpecError(f"{loc}.name", name, graph.NAME_RULE)


def _names(layers: list[Any], locs: Sequence[str]) -> list[dict[str, Any]]:
    """Each layer with its name: its own, else Keras's (``dense``, ``dense_1``, ... per type,
    counted over nested layers too: ``Bidirectional(LSTM)`` after an LSTM holds ``lstm_1``).
    Nested layers get theirs in copies of their objects; top-level names are unique."""
    given: dict[str, int] = {}
    taken: set[str] = set()
    for i, raw in enumerate(layers):
        if raw.get("type") in ("InputLayer", "input_layer"):
            raise ModelSpecError(
                f"{locs[i]}.type", raw["type"], "graph inputs go in inputs (or input_shape)"
            )
        for obj, loc in _walk(raw, locs[i]):
            name = obj.get("name")
            if name is None:
                continue
            _check_name(name, loc)
            if obj is raw and name in given:
                raise ModelSpecError(f"{loc}.name", name, f"also names {locs[given[name]]}")
            if obj is raw:
                given[name] = i
            taken.add(name)
    counts: dict[str, int] = {}

    def named(raw: Mapping[str, Any], loc: str) -> dict[str, Any]:
        out = dict(raw)
        for key in _NESTED:
            if isinstance(raw.get(key), Mapping):
                out[key] = named(raw[key], f"{loc}.{key}")
        if out.get("name") is None:
            base = layer_type(raw.get("type"), loc).type
            while True:
                n = counts.get(base, 0)
                counts[base] = n + 1
                name = base if n == 0 else f"{base}_{n}"
                if name not in taken:
                    break
            out["name"] = name
        return out

    return [named(raw, locs[i]) for i, raw in enumerate(layers)]


def _default_ref(defaults: str, w: WeightShape) -> Any:
    ref = w.default if w.default is not None else _DEFAULT_REFS[defaults][w.role]
    shape = w.shape
    if ref == "tfjs_glorot_normal":
        # TF.js 4.22 glorotNormal: a normal truncated at 2 std with std sqrt(2 / (fan_in +
        # fan_out)) and no 0.8796 correction (tfjs-layers initializers.ts VarianceScaling).
        fan_in, fan_out = compute_fans(shape)
        std = math.sqrt(2.0 / max(1.0, fan_in + fan_out))
        return {"class_name": "TruncatedNormal", "config": {"mean": 0.0, "stddev": std}}
    return ref


def nested(config: Mapping[str, Any], owner: tuple[str, ...]) -> Any:
    """The dict at ``owner`` inside a layer config (a wrapper's inner layer config)."""
    for key in owner:
        config = config[key]
    return config


def _initializer(
    raw: Mapping[str, Any], w: WeightShape, loc: str, defaults: str, limits: Limits
) -> Initializer:
    field = initializer_field(w.role)
    loc = ".".join((loc, *w.owner))
    ref = nested(raw, w.owner).get(field)
    if ref is None:
        ref = _default_ref(defaults, w)
    try:
        init = resolve(ref)
        init.check(w.shape, dtype="float32", layout="keras")
    except InitializerError as exc:
        raise ModelSpecError(f"{loc}.{field}", ref, f"{exc.field}: {exc.msg}") from exc
    return init


def _canonical_ref(init: Initializer) -> dict[str, Any]:
    form = init.keras_config(init.seed)
    if form["config"].get("seed", 0) is None:
        del form["config"]["seed"]
    return form


def _check_body(body: Mapping[str, Any], limits: Limits) -> list[Any]:
    for key in body:
        if key not in _FIELDS:
            raise ModelSpecError(key, body[key], f"unknown field; fields: {_FIELDS}")
    if body.get("defaults", "keras") not in DEFAULTS:
        raise ModelSpecError("defaults", body["defaults"], f"must be one of {', '.join(DEFAULTS)}")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not graph.NAME.match(name)):
        raise ModelSpecError("name", name, graph.NAME_RULE)
    raw_layers = body.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise ModelSpecError("layers", raw_layers, "must be a non-empty list of layer objects")
    if len(raw_layers) > limits.max_layers:
        raise ModelTooLargeError(
            "layers",
            len(raw_layers),
            f"{len(raw_layers)} layers > the limit of {limits.max_layers}",
        )
    return raw_layers


def plan_model(body: object, limits: Limits) -> ModelPlan:
    """Validate a spec (a layer list, or ``{"topology": ...}``) and plan its weights;
    nothing is allocated."""
    if not isinstance(body, Mapping):
        raise ModelSpecError("body", body, "must be a JSON object")
    locs: graph.Locs | None = None
    if "topology" in body:
        body, locs = translate(body, limits.max_topology_bytes, limits.max_layers)
    raw_layers = _check_body(body, limits)
    if locs is None:
        inputs = body.get("inputs")
        locs = graph.Locs(
            [f"layers[{i}]" for i in range(len(raw_layers))],
            [f"inputs[{i}]" for i in range(len(inputs) if isinstance(inputs, list) else 0)],
            [f"layers[{i}].inbound" for i in range(len(raw_layers))],
        )
    for i, raw in enumerate(raw_layers):
        if not isinstance(raw, Mapping):
            raise ModelSpecError(locs.layers[i], raw, "must be an object with a type")
    defaults = body.get("defaults", "keras")
    seed = _seed(body)
    named = _names(raw_layers, locs.layers)
    names = [raw["name"] for raw in named]
    inputs = graph.inputs(body, locs, set(names), limits.max_rank)
    net = graph.build(body, raw_layers, names, inputs, locs, limits.max_depth or len(names))

    shapes: dict[str, tuple[Shape, ...]] = {x.name: (x.shape,) for x in net.inputs}
    inferred = []
    params = 0
    for node in net.layers:
        raw = {k: v for k, v in named[node.index].items() if k != "inbound"}
        loc = locs.layers[node.index]
        kind = layer_type(raw.get("type"), loc)
        # Every output of each inbound layer (a Bidirectional with merge_mode null has two).
        in_shapes = tuple(s for n in node.inbound for s in shapes[n])
        fields, kept = extras.split(kind, raw, loc)
        result = infer(kind, fields, in_shapes, loc, defaults)
        for w in result.weights:
            size = math.prod(w.shape)
            if size > limits.max_weight_elements:
                raise ModelTooLargeError(
                    loc,
                    list(w.shape),
                    f"weight {node.name}/{w.name} has {size} elements > the limit of "
                    f"{limits.max_weight_elements} per weight",
                )
            params += size
        if params > limits.max_params:
            raise ModelTooLargeError(
                loc, params, f"{params} parameters so far > the limit of {limits.max_params}"
            )
        inferred.append((kind, node, raw, loc, in_shapes, result, kept))
        shapes[node.name] = result.outputs

    sequential = "inputs" not in body and net.chain
    layers = []
    index = 0
    work = 0
    for kind, node, raw, loc, in_shapes, result, kept in inferred:
        config: dict[str, Any] = {"type": kind.type, "name": node.name, **result.config, **kept}
        if not sequential:
            config["inbound"] = list(node.inbound)
        weights = []
        for w in result.weights:
            init = _initializer(raw, w, loc, defaults, limits)
            if init.family == "orthogonal":
                work += init.work(w.shape)
            if work > limits.max_orthogonal_work:
                raise ModelTooLargeError(
                    ".".join((loc, *w.owner, initializer_field(w.role))),
                    list(w.shape),
                    f"orthogonal work {work} > the limit of {limits.max_orthogonal_work}",
                )
            field = initializer_field(w.role)
            nested(config, w.owner)[field] = _canonical_ref(init)
            full = f"{node.name}/{w.name}"
            own = init.seed if init.seed is not None else weight_seed(seed, index, full)
            tfjs = f"{node.name}/{w.tfjs_name}" if w.tfjs_name else ""
            weights.append(Weight(full, w.shape, field, init, own, w.forget_units, w.owner, tfjs))
            index += 1
        layers.append(
            Layer(
                kind,
                node.name,
                config,
                in_shapes,
                result.output_shape,
                tuple(weights),
                node.inbound,
                result.more_outputs,
            )
        )
    spec: dict[str, Any] = {}
    if body.get("name") is not None:
        spec["name"] = body["name"]
    if sequential:
        spec["input_shape"] = list(inputs[0].shape)
    else:
        spec["inputs"] = [x.canonical() for x in net.inputs]
    spec["defaults"] = defaults
    spec["layers"] = [layer.config for layer in layers]
    if not sequential:
        spec["outputs"] = list(net.outputs)
    return ModelPlan(spec, seed, tuple(layers), net.inputs, net.outputs, body.get("name"))
