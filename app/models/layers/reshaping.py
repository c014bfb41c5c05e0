"""Weightless layers that move or resize axes: Reshape, Permute, RepeatVector, and
ZeroPadding / Cropping / UpSampling 1D, 2D, 3D."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from app.models.layers.fields import Fields, Inferred, Shape
from app.models.layers.table import LayerType
from app.models.layers.tfjs import unsupported

_NO_TFJS = "TF.js 4.22 has no {}"
# Keras 3 UpSampling2D's interpolations; TF.js 4.22 runs nearest and bilinear only.
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos3", "lanczos5")


def _reshape(f: Fields, shape: Shape, _: str) -> Inferred:
    target = f.int_list("target_shape", minimum=-1)
    assert target is not None
    if 0 in target or target.count(-1) > 1:
        raise f.fail("target_shape", "takes sizes >= 1 and at most one -1")
    known = math.prod(d for d in target if d != -1)
    if any(d is None for d in shape):
        if -1 not in target:
            raise f.shape_error(shape, "needs every axis known, or a -1 in target_shape")
        return Inferred(f.out, tuple(None if d == -1 else d for d in target), ())
    total = math.prod(d for d in shape if d is not None)
    if -1 in target:
        if total % known:
            raise f.fail("target_shape", f"does not divide the input's {total} elements")
        return Inferred(f.out, tuple(total // known if d == -1 else d for d in target), ())
    if known != total:
        raise f.fail("target_shape", f"has {known} elements; the input has {total}")
    return Inferred(f.out, tuple(target), ())


def _permute(f: Fields, shape: Shape, _: str) -> Inferred:
    dims = f.int_list("dims", minimum=1)
    assert dims is not None
    if sorted(dims) != list(range(1, len(shape) + 1)):
        raise f.fail("dims", f"must be a permutation of 1..{len(shape)} (the input's axes)")
    return Inferred(f.out, tuple(shape[d - 1] for d in dims), ())


def _repeat_vector(f: Fields, shape: Shape, _: str) -> Inferred:
    f.rank(shape, (1,), "(features,)")
    return Inferred(f.out, (f.integer("n"), shape[0]), ())


def _spatial(f: Fields, shape: Shape, n: int, has_format: bool) -> tuple[Shape, bool]:
    """The spatial axes and whether channels come first (1D layers: channels last)."""
    f.rank(shape, (n + 1,), "(spatial..., channels)")
    first = f.data_format() if has_format else False
    return (shape[1:] if first else shape[:-1]), first


def _join(spatial: list[int | None], shape: Shape, first: bool) -> Shape:
    return (shape[0], *spatial) if first else (*spatial, shape[-1])


def _pad(n: int, crop: bool) -> Callable[[Fields, Shape, str], Inferred]:
    key = "cropping" if crop else "padding"
    # Keras 3 defaults: ZeroPadding 1; Cropping1D/3D 1, Cropping2D 0.
    default = 0 if crop and n == 2 else 1

    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        # Keras 3's Cropping1D alone has no data_format.
        spatial, first = _spatial(f, shape, n, has_format=not (crop and n == 1))
        amounts = f.pairs(key, default, n)
        out: list[int | None] = []
        for size, (a, b) in zip(spatial, amounts, strict=True):
            if size is None:
                out.append(None)
            elif not crop:
                out.append(size + a + b)
            elif a + b >= size:
                raise f.fail(key, f"crops {a + b} of the input's {size} (nothing left)")
            else:
                out.append(size - a - b)
        return Inferred(f.out, _join(out, shape, first), ())

    return infer


def _upsampling(n: int) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        # Keras 3's UpSampling1D alone has no data_format.
        spatial, first = _spatial(f, shape, n, has_format=n > 1)
        size = f.ints("size", 2, n)
        if n == 1:
            f.out["size"] = size[0]  # Keras 3 writes UpSampling1D's size as an int
        if n == 2:
            f.choice("interpolation", "nearest", _INTERPOLATIONS)
        out = [None if d is None else d * s for d, s in zip(spatial, size, strict=True)]
        return Inferred(f.out, _join(out, shape, first), ())

    return infer


def _tfjs_upsampling(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
    if config["interpolation"] not in ("nearest", "bilinear"):
        raise unsupported(
            f"{loc}.interpolation",
            config["interpolation"],
            config,
            "TF.js 4.22 UpSampling2D interpolates nearest or bilinear only",
        )


LAYERS: tuple[LayerType, ...] = (
    LayerType("reshape", "Reshape", _reshape, ("target_shape",)),
    LayerType("permute", "Permute", _permute, ("dims",)),
    LayerType("repeat_vector", "RepeatVector", _repeat_vector, ("n",)),
    *(
        LayerType(
            f"zero_padding{n}d",
            f"ZeroPadding{n}D",
            _pad(n, crop=False),
            ("padding", "data_format"),
            tfjs_unsupported=None if n == 2 else _NO_TFJS.format(f"ZeroPadding{n}D"),
        )
        for n in (1, 2, 3)
    ),
    *(
        LayerType(
            f"cropping{n}d",
            f"Cropping{n}D",
            _pad(n, crop=True),
            ("cropping",) if n == 1 else ("cropping", "data_format"),
            tfjs_unsupported=None if n == 2 else _NO_TFJS.format(f"Cropping{n}D"),
        )
        for n in (1, 2, 3)
    ),
    LayerType(
        "up_sampling1d",
        "UpSampling1D",
        _upsampling(1),
        ("size",),
        tfjs_unsupported=_NO_TFJS.format("UpSampling1D"),
    ),
    LayerType(
        "up_sampling2d",
        "UpSampling2D",
        _upsampling(2),
        ("size", "data_format", "interpolation"),
        tfjs=_tfjs_upsampling,
    ),
    LayerType(
        "up_sampling3d",
        "UpSampling3D",
        _upsampling(3),
        ("size", "data_format"),
        tfjs_unsupported=_NO_TFJS.format("UpSampling3D"),
    ),
)
