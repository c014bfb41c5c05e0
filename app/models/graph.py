"""The layer graph of a model spec: its inputs, each layer's inbound layers, its outputs, and
the order Keras 3 gives the layers (hence the weights) of the same functional model.

The sequential form (``input_shape``, no ``inbound`` or ``outputs``) is a chain. The
functional form names its inputs (``inputs: [{"name", "shape", "dtype"?}]``, dtype float32 or
int32); a layer's ``inbound`` (default: the previous layer, the first layer's the single input)
lists the layers or inputs it is called on, in call order; ``outputs`` (default: the last
layer) lists the model's outputs.

Refused, each naming its field: unknown or dangling names, cycles, a layer that reaches no
output, a graph deeper than the limit. An input may reach none: Keras 3 and TF.js 4.22 keep it
as a model input (``keras.Model([a, b], f(a))``). A layer is called once (Keras allows shared
layers, called on several inputs; this service does not).

Order: Keras's ``map_graph``. A depth-first walk from each output in turn numbers every node
when first seen; a node's depth is the most layers between it and an output; layers are
ordered by depth (deepest first), then by that number. So the same graph posted in any layer
order plans the same weights in the same order as Keras's ``model.weights``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.models.errors import ModelSpecError, ModelTooLargeError
from app.models.layers import Shape

INPUT_BASE = "input_layer"  # what Keras 3 names an unnamed Input
INPUT_DTYPES = ("float32", "int32")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
NAME_RULE = "must be 1-128 of A-Z a-z 0-9 _ . - (no '/')"


@dataclass(frozen=True)
class Locs:
    """Where each part of the spec was posted (a topology's own paths, or the layer list's)."""

    layers: Sequence[str]  # "layers[2]" / "topology.config.layers[3].config"
    inputs: Sequence[str]  # "inputs[0]" / "topology.config.layers[0].config"
    inbound: Sequence[str]  # "layers[2].inbound" / "topology.config.layers[3].inbound_nodes"
    outputs: str = "outputs"
    input_shape: str = "input_shape"


@dataclass(frozen=True)
class Input:
    """A graph input: its name, one example's shape, and its dtype (int32: Embedding ids)."""

    name: str
    shape: Shape
    dtype: str = "float32"

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "shape": list(self.shape)}
        if self.dtype != "float32":
            out["dtype"] = self.dtype
        return out


@dataclass(frozen=True)
class Node:
    index: int  # in the posted list
    name: str
    inbound: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    inputs: tuple[Input, ...]
    layers: tuple[Node, ...]  # Keras's order
    outputs: tuple[str, ...]
    depth: int  # the most layers on a path from an input to an output

    @property
    def chain(self) -> bool:
        return is_chain(
            [x.name for x in self.inputs],
            [(n.name, n.inbound) for n in self.layers],
            self.outputs,
        )


def is_chain(
    inputs: Sequence[str], layers: Sequence[tuple[str, tuple[str, ...]]], outputs: Sequence[str]
) -> bool:
    """One input, each layer (name, inbound) called on the one before, the last the output."""
    previous = [*inputs[:1], *(name for name, _ in layers)]
    return (
        len(inputs) == 1
        and all(inbound == (p,) for (_, inbound), p in zip(layers, previous, strict=False))
        and tuple(outputs) == (layers[-1][0],)
    )


def shape(value: Any, loc: str, max_rank: int) -> Shape:
    """One example's shape (batch axis excluded); ``None`` (null): an open dimension."""
    if (
        not isinstance(value, list)
        or not 1 <= len(value) < max_rank
        or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1)
            for d in value
        )
    ):
        raise ModelSpecError(
            loc,
            value,
            f"must be a list of 1 to {max_rank - 1} integers >= 1 or null (open), "
            "batch axis excluded",
        )
    return tuple(value)


def _unique(base: str, taken: set[str]) -> str:
    n = 0
    while (name := base if n == 0 else f"{base}_{n}") in taken:
        n += 1
    return name


def inputs(body: Mapping[str, Any], locs: Locs, taken: set[str], max_rank: int) -> list[Input]:
    """The graph inputs (``input_shape``: one float32 input, named as Keras names an Input)."""
    if "input_shape" in body:
        if "inputs" in body:
            raise ModelSpecError("inputs", body["inputs"], "give inputs or input_shape, not both")
        only = Input(
            _unique(INPUT_BASE, taken), shape(body["input_shape"], locs.input_shape, max_rank)
        )
        return [only]
    raw = body.get("inputs")
    if not isinstance(raw, list) or not raw:
        raise ModelSpecError(
            "input_shape", None, "is required (or inputs: [{name, shape}, ...] for a graph)"
        )
    out: list[Input] = []
    for i, item in enumerate(raw):
        at = locs.inputs[i]
        if not isinstance(item, Mapping) or set(item) - {"name", "shape", "dtype"}:
            raise ModelSpecError(at, item, "must be an object {name?, shape, dtype?}")
        name = item.get("name")
        names = {x.name for x in out}
        if name is None:
            name = _unique(INPUT_BASE, taken | names)
        elif not isinstance(name, str) or not NAME.match(name):
            raise ModelSpecError(f"{at}.name", name, NAME_RULE)
        elif name in taken or name in names:
            raise ModelSpecError(f"{at}.name", name, "names a layer or input already")
        dtype = item.get("dtype", "float32")
        if dtype not in INPUT_DTYPES:
            raise ModelSpecError(f"{at}.dtype", dtype, f"must be one of {', '.join(INPUT_DTYPES)}")
        out.append(Input(name, shape(item.get("shape"), f"{at}.shape", max_rank), dtype))
    return out


def _inbound(raw: Mapping[str, Any], loc: str, previous: str | None) -> tuple[str, ...]:
    value = raw.get("inbound")
    if value is None:
        if previous is None:
            raise ModelSpecError(loc, None, "is required: the model has several inputs")
        return (previous,)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ModelSpecError(loc, value, "must be a non-empty list of layer names")
    return tuple(value)


def build(
    body: Mapping[str, Any],
    layers: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    graph_inputs: Sequence[Input],
    locs: Locs,
    max_depth: int,
) -> Graph:
    """Check the graph and order its layers as Keras does (see the module docstring)."""
    input_names = [x.name for x in graph_inputs]
    single = input_names[0] if len(input_names) == 1 else None
    nodes: dict[str, Node] = {}
    previous = single
    for i, (raw, name) in enumerate(zip(layers, names, strict=True)):
        nodes[name] = Node(i, name, _inbound(raw, locs.inbound[i], previous))
        previous = name
    known = set(nodes) | set(input_names)
    for node in nodes.values():
        for j, ref in enumerate(node.inbound):
            if ref not in known:
                raise ModelSpecError(
                    f"{locs.inbound[node.index]}[{j}]",
                    ref,
                    "names no layer or input of the model",
                )
    outputs = _outputs(body, names, known, locs)

    # Depth-first from each output: number nodes when first seen, list them when finished.
    seen: dict[str, int] = {}
    finished: list[str] = []
    done: set[str] = set()
    for out in outputs:
        stack: list[tuple[str, int]] = [(out, 0)]
        path: set[str] = set()
        while stack:
            name, k = stack.pop()
            if k == 0:
                if name in done:
                    continue
                seen.setdefault(name, len(seen))
                path.add(name)
            parents = nodes[name].inbound if name in nodes else ()
            if k < len(parents):
                stack.append((name, k + 1))
                parent = parents[k]
                if parent in path:
                    node = nodes[name]
                    raise ModelSpecError(
                        locs.inbound[node.index],
                        list(node.inbound),
                        f"closes a cycle through {parent!r}",
                    )
                if parent not in done:
                    stack.append((parent, 0))
                continue
            path.discard(name)
            done.add(name)
            finished.append(name)
    for name, node in nodes.items():
        if name not in done:
            raise ModelSpecError(
                locs.layers[node.index], name, f"layer {name!r} reaches no output ({outputs})"
            )

    depths: dict[str, int] = {}
    for name in reversed(finished):
        depth = depths.setdefault(name, 0)
        for parent in nodes[name].inbound if name in nodes else ():
            depths[parent] = max(depth + 1, depths.get(parent, 0))
    # An input that reaches no output is kept, as Keras and TF.js keep it (depth 0).
    depth = max(depths.get(name, 0) for name in input_names)
    if depth > max_depth:
        raise ModelTooLargeError(
            "layers", depth, f"graph depth {depth} > the limit of {max_depth} layers"
        )
    order = sorted(nodes, key=lambda n: (-depths[n], seen[n]))
    return Graph(
        tuple(graph_inputs),
        tuple(nodes[n] for n in order),
        outputs,
        depth,
    )


def _outputs(
    body: Mapping[str, Any], names: Sequence[str], known: set[str], locs: Locs
) -> tuple[str, ...]:
    value = body.get("outputs")
    if value is None:
        return (names[-1],)
    if not isinstance(value, list) or not value:
        raise ModelSpecError(locs.outputs, value, "must be a non-empty list of layer names")
    for j, ref in enumerate(value):
        if not isinstance(ref, str) or ref not in known:
            raise ModelSpecError(f"{locs.outputs}[{j}]", ref, "names no layer of the model")
        if ref not in names:
            raise ModelSpecError(f"{locs.outputs}[{j}]", ref, "is an input, not a layer")
    if len(set(value)) != len(value):
        raise ModelSpecError(locs.outputs, value, "lists a layer twice")
    return tuple(value)
