"""Pooling: Max/AveragePooling1D/2D/3D and GlobalMax/GlobalAveragePooling1D/2D/3D (no weights)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.models.layers.fields import Fields, Inferred, Shape
from app.models.layers.table import LayerType, TfjsHook
from app.models.layers.tfjs import unsupported

_FIELDS = ("pool_size", "strides", "padding", "data_format")


def _pool(n: int, default: int | None) -> Callable[[Fields, Shape, str], Inferred]:
    """Keras: ``strides`` default to ``pool_size``; valid ``(size - pool) // stride + 1``,
    same ``ceil(size / stride)``."""

    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        f.rank(shape, (n + 1,), "(spatial..., channels)")
        pool = f.ints("pool_size", default, n)
        strides = f.ints("strides", None, n) if f.raw.get("strides") is not None else pool
        f.out["strides"] = list(strides)
        padding = f.choice("padding", "valid", ("valid", "same"))
        first = f.data_format()
        spatial = shape[1:] if first else shape[:-1]
        out: list[int | None] = []
        for size, p, s in zip(spatial, pool, strides, strict=True):
            if size is None:
                out.append(None)
            elif padding == "same":
                out.append(-(-size // s))
            elif p > size:
                raise f.fail("pool_size", f"{p} > the input's {size} (padding valid)")
            else:
                out.append((size - p) // s + 1)
        result = (shape[0], *out) if first else (*out, shape[-1])
        return Inferred(f.out, result, ())

    return infer


def _global(n: int) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        f.rank(shape, (n + 1,), "(spatial..., channels)")
        first = f.data_format()
        channels = shape[0] if first else shape[-1]
        if not f.flag("keepdims", False):
            return Inferred(f.out, (channels,), ())
        ones = (1,) * n
        return Inferred(f.out, (channels, *ones) if first else (*ones, channels), ())

    return infer


def _tfjs_pool1d(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
    if config["data_format"] == "channels_first":
        raise unsupported(
            f"{loc}.data_format",
            "channels_first",
            config,
            "TF.js 4.22's 1D pooling has no data_format (channels_last only)",
        )


def _tfjs_global(n: int) -> TfjsHook:
    def hook(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
        if n == 1:
            _tfjs_pool1d(config, loc, _shapes)
        if config["keepdims"]:
            raise unsupported(
                f"{loc}.keepdims", True, config, "TF.js 4.22's global pooling has no keepdims"
            )
        del config["keepdims"]

    return hook


_NO_3D = "TF.js 4.22 has no {}3D"
LAYERS: tuple[LayerType, ...] = tuple(
    LayerType(
        f"{key}_pooling{n}d",
        f"{cls}Pooling{n}D",
        _pool(n, 2 if key == "max" else None),
        _FIELDS,
        tfjs=_tfjs_pool1d if n == 1 else None,
    )
    for key, cls in (("max", "Max"), ("average", "Average"))
    for n in (1, 2, 3)
) + tuple(
    LayerType(
        f"global_{key}_pooling{n}d",
        f"Global{cls}Pooling{n}D",
        _global(n),
        ("data_format", "keepdims"),
        tfjs_unsupported=_NO_3D.format(f"Global{cls}Pooling") if n == 3 else None,
        tfjs=_tfjs_global(n),
    )
    for key, cls in (("max", "Max"), ("average", "Average"))
    for n in (1, 2, 3)
)
