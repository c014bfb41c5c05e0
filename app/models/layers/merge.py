"""The merge layers (functional graphs only): elementwise Add ... Minimum, Concatenate, Dot.

Weightless; each takes every input's shape (batch excluded) and infers the output as Keras 3
does: elementwise layers broadcast from the right (``None`` stays open, ``1`` stretches),
Concatenate joins along ``axis`` with the other axes equal, Dot contracts ``axes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.models.layers.fields import Fields, Inferred, Shape
from app.models.layers.table import LayerType
from app.models.layers.tfjs import unsupported


def _broadcast(f: Fields, shapes: tuple[Shape, ...]) -> Shape:
    out = shapes[0]
    for shape in shapes[1:]:
        long, short = (out, shape) if len(out) >= len(shape) else (shape, out)
        dims: list[int | None] = list(long[: len(long) - len(short)])
        for i, j in zip(long[len(long) - len(short) :], short, strict=True):
            if i is None or j is None:
                dims.append(None)
            elif i == 1 or j == 1 or i == j:
                dims.append(j if i == 1 else i)
            else:
                raise f.shape_error(
                    shape, f"cannot broadcast {list(out)} with {list(shape)} (elementwise merge)"
                )
        out = tuple(dims)
    return out


def _elementwise(exactly: int | None) -> Callable[[Fields, tuple[Shape, ...], str], Inferred]:
    def infer(f: Fields, shapes: tuple[Shape, ...], _: str) -> Inferred:
        if exactly is not None and len(shapes) != exactly:
            raise f.shape_error(shapes[0], f"takes exactly {exactly} inputs; got {len(shapes)}")
        return Inferred(f.out, _broadcast(f, shapes), ())

    return infer


def _concatenate(f: Fields, shapes: tuple[Shape, ...], _: str) -> Inferred:
    rank = len(shapes[0])
    axis = f.raw.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis <= rank:
        raise f.fail("axis", f"must be an integer in [{-rank}, {rank}] (0: the batch axis)")
    if axis % (rank + 1) == 0:
        raise f.fail("axis", "cannot be the batch axis")
    f.out["axis"] = axis
    at = axis % (rank + 1) - 1
    total: int | None = 0
    out: list[int | None] = list(shapes[0])
    for shape in shapes:
        if len(shape) != rank:
            raise f.shape_error(shape, f"needs inputs of one rank; got {[list(s) for s in shapes]}")
        for k, (a, b) in enumerate(zip(out, shape, strict=True)):
            if k == at:
                continue
            if a is not None and b is not None and a != b:
                raise f.shape_error(
                    shape,
                    f"needs equal shapes except on axis {axis}; got {[list(s) for s in shapes]}",
                )
            out[k] = a if a is not None else b
        size = shape[at]
        total = None if total is None or size is None else total + size
    out[at] = total
    return Inferred(f.out, tuple(out), ())


def _dot(f: Fields, shapes: tuple[Shape, ...], _: str) -> Inferred:
    if len(shapes) != 2:
        raise f.shape_error(shapes[0], f"takes exactly 2 inputs; got {len(shapes)}")
    value = f.raw.get("axes")
    pair = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(pair, list | tuple)
        or len(pair) != 2
        or any(isinstance(a, bool) or not isinstance(a, int) for a in pair)
    ):
        raise f.fail("axes", "is required: an integer or a list of 2 (Keras counts the batch axis)")
    axes = []
    for a, shape in zip(pair, shapes, strict=True):
        rank = len(shape) + 1
        if not -rank <= a < rank or a % rank == 0:
            raise f.fail("axes", f"must name a non-batch axis of inputs of rank {rank}")
        axes.append(a % rank - 1)
    f.out["axes"] = value if isinstance(value, int) else list(pair)
    f.flag("normalize", False)
    one, two = shapes
    if one[axes[0]] is not None and two[axes[1]] is not None and one[axes[0]] != two[axes[1]]:
        raise f.fail(
            "axes", f"contracts {one[axes[0]]} with {two[axes[1]]}; got {list(one)}, {list(two)}"
        )
    out = (*one[: axes[0]], *one[axes[0] + 1 :], *two[: axes[1]], *two[axes[1] + 1 :])
    return Inferred(f.out, out or (1,), ())


def _tfjs_merge(config: dict[str, Any], loc: str, _: tuple[Shape, ...]) -> None:
    inbound = config.get("inbound", [])
    if len(inbound) < 2:
        raise unsupported(f"{loc}.inbound", inbound, config, "TF.js 4.22 merges 2 inputs or more")


def _tfjs_dot(config: dict[str, Any], loc: str, shapes: tuple[Shape, ...]) -> None:
    _tfjs_merge(config, loc, shapes)
    if max(len(s) for s in shapes) > 2:
        raise unsupported(
            f"{loc}.type", "Dot", config, "TF.js 4.22's Dot takes inputs of rank 3 at most"
        )


_NO_SUBTRACT = "TF.js 4.22 has no Subtract layer"
LAYERS: tuple[LayerType, ...] = (
    *(
        LayerType(name.lower(), name, None, (), infer_many=_elementwise(None), tfjs=_tfjs_merge)
        for name in ("Add", "Multiply", "Average", "Maximum", "Minimum")
    ),
    LayerType(
        "subtract", "Subtract", None, (), infer_many=_elementwise(2), tfjs_unsupported=_NO_SUBTRACT
    ),
    LayerType(
        "concatenate", "Concatenate", None, ("axis",), infer_many=_concatenate, tfjs=_tfjs_merge
    ),
    LayerType("dot", "Dot", None, ("axes", "normalize"), infer_many=_dot, tfjs=_tfjs_dot),
)
