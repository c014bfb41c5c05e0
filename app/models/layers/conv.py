"""The convolutions: Conv1D, Conv2D (kernels ``(*kernel_size, in / groups, filters)``)."""

from __future__ import annotations

from collections.abc import Callable

from app.models.layers.fields import ACTIVATIONS, Fields, Inferred, Shape, WeightShape
from app.models.layers.table import LayerType


def conv_output(
    f: Fields,
    spatial: Shape,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: str,
) -> list[int | None]:
    """Each spatial axis's output size (``None`` stays ``None``), as Keras computes it."""
    out: list[int | None] = []
    for size, k, s, d in zip(spatial, kernel, strides, dilation, strict=True):
        if size is None:
            out.append(None)
        elif padding == "same":
            out.append(-(-size // s))
        else:
            span = d * (k - 1) + 1
            if span > size:
                raise f.fail("kernel_size", f"spans {span} > the input's {size} (padding valid)")
            out.append((size - span) // s + 1)
    return out


def _conv(n: int) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        f.rank(shape, (n + 1,), "(spatial..., channels)")
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
        axis = -1 if fmt == "channels_last" else 0
        channels = f.known(shape, axis, "channels")
        spatial = shape[:-1] if fmt == "channels_last" else shape[1:]
        if channels % groups or filters % groups:
            raise f.fail("groups", f"must divide the input channels ({channels}) and filters")
        out = conv_output(f, spatial, kernel, strides, dilation, padding)
        weights = [WeightShape("kernel", (*kernel, channels // groups, filters), "kernel")]
        if f.flag("use_bias", True):
            weights.append(WeightShape("bias", (filters,), "bias"))
        result = (*out, filters) if fmt == "channels_last" else (filters, *out)
        return Inferred(f.out, result, tuple(weights))

    return infer


CONV_FIELDS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate")
LAYERS: tuple[LayerType, ...] = tuple(
    LayerType(
        f"conv{n}d",
        f"Conv{n}D",
        _conv(n),
        (*CONV_FIELDS, "groups", "activation", "use_bias"),
        ("kernel", "bias"),
    )
    for n in (1, 2)
)
