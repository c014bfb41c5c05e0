"""The convolutions: Conv1D/2D/3D, their transposes, the depthwise and separable ones.

Kernels (Keras 3 and TF.js 4.22 layouts): Conv ``(*kernel_size, in / groups, filters)``;
ConvTranspose ``(*kernel_size, filters, in)``; Depthwise ``(*kernel_size, in,
depth_multiplier)``; Separable ``depthwise_kernel (*kernel_size, in, depth_multiplier)`` then
``pointwise_kernel (1, ..., 1, in * depth_multiplier, filters)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from app.models.layers.fields import ACTIVATIONS, Fields, Inferred, Shape, WeightShape
from app.models.layers.table import LayerType, TfjsHook
from app.models.layers.tfjs import unsupported


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
        elif padding in ("same", "causal"):
            # causal: left-padded by the span - 1, then valid: the same ceil(size / stride)
            out.append(-(-size // s))
        else:
            span = d * (k - 1) + 1
            if span > size:
                raise f.fail("kernel_size", f"spans {span} > the input's {size} (padding valid)")
            out.append((size - span) // s + 1)
    return out


def transpose_output(
    spatial: Shape,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: str,
    output_padding: tuple[int, ...] | None,
) -> list[int | None]:
    """Keras's transpose output size: with ``output_padding`` ``(n - 1) * s + k' - 2 * pad +
    output_padding`` (``pad = k' // 2`` for same), else ``n * s + max(k' - s, 0)`` (valid) or
    ``n * s`` (same), where ``k' = d * (k - 1) + 1``."""
    out: list[int | None] = []
    for i, (size, k, s, d) in enumerate(zip(spatial, kernel, strides, dilation, strict=True)):
        span = d * (k - 1) + 1
        if size is None:
            out.append(None)
        elif output_padding is None:
            out.append(size * s + (max(span - s, 0) if padding == "valid" else 0))
        else:
            pad = span // 2 if padding == "same" else 0
            out.append((size - 1) * s + span - 2 * pad + output_padding[i])
    return out


class _Window(NamedTuple):
    channels: int
    spatial: Shape
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str
    first: bool  # channels_first


def _read(f: Fields, shape: Shape, n: int, kind: str) -> _Window:
    """The fields every convolution has (``kind``: conv, transpose, depthwise, separable)."""
    f.rank(shape, (n + 1,), "(spatial..., channels)")
    if kind in ("depthwise", "separable"):
        f.integer("depth_multiplier", 1)
    if kind != "depthwise":
        f.integer("filters")
    kernel = f.ints("kernel_size", None, n)
    strides = f.ints("strides", 1, n)
    # Keras 3 takes causal padding on Conv1D only.
    paddings = ("valid", "same", "causal") if kind == "conv" and n == 1 else ("valid", "same")
    padding = f.choice("padding", "valid", paddings)
    first = f.data_format()
    dilation = f.ints("dilation_rate", 1, n)
    f.choice("activation", "linear", ACTIVATIONS)
    if kind in ("conv", "transpose") and max(strides) > 1 and max(dilation) > 1:
        # (Keras 3's depthwise and separable convolutions take both.)
        raise f.fail("dilation_rate", "cannot exceed 1 when a stride does (Keras refuses it)")
    channels = f.known(shape, 0 if first else -1, "channels")
    spatial = shape[1:] if first else shape[:-1]
    return _Window(channels, spatial, kernel, strides, dilation, padding, first)


def _result(
    f: Fields, out: list[int | None], filters: int, first: bool, weights: list[Any]
) -> Inferred:
    if f.flag("use_bias", True):
        weights.append(WeightShape("bias", (filters,), "bias"))
    shape = (filters, *out) if first else (*out, filters)
    return Inferred(f.out, shape, tuple(weights))


def _conv(n: int) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        w = _read(f, shape, n, "conv")
        filters = f.out["filters"]
        groups = f.integer("groups", 1)
        if w.channels % groups or filters % groups:
            raise f.fail("groups", f"must divide the input channels ({w.channels}) and filters")
        out = conv_output(f, w.spatial, w.kernel, w.strides, w.dilation, w.padding)
        weights = [WeightShape("kernel", (*w.kernel, w.channels // groups, filters), "kernel")]
        return _result(f, out, filters, w.first, weights)

    return infer


def _transpose(n: int) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        w = _read(f, shape, n, "transpose")
        filters = f.out["filters"]
        output_padding = None
        if f.raw.get("output_padding") is None:
            f.out["output_padding"] = None
        else:
            output_padding = f.ints("output_padding", None, n, minimum=0)
            if any(p >= s for p, s in zip(output_padding, w.strides, strict=True)):
                raise f.fail("output_padding", "must be less than the stride on every axis")
        out = transpose_output(
            w.spatial, w.kernel, w.strides, w.dilation, w.padding, output_padding
        )
        weights = [WeightShape("kernel", (*w.kernel, filters, w.channels), "kernel")]
        return _result(f, out, filters, w.first, weights)

    return infer


def _depthwise(n: int) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        w = _read(f, shape, n, "depthwise")
        mult = f.out["depth_multiplier"]
        out = conv_output(f, w.spatial, w.kernel, w.strides, w.dilation, w.padding)
        # Keras 3 names it "kernel", TF.js 4.22 (and Keras 2) "depthwise_kernel".
        kernel = WeightShape(
            "kernel", (*w.kernel, w.channels, mult), "depthwise", tfjs_name="depthwise_kernel"
        )
        return _result(f, out, w.channels * mult, w.first, [kernel])

    return infer


def _separable(n: int) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, defaults: str) -> Inferred:
        w = _read(f, shape, n, "separable")
        mult, filters = f.out["depth_multiplier"], f.out["filters"]
        out = conv_output(f, w.spatial, w.kernel, w.strides, w.dilation, w.padding)
        # TF.js 4.22 SeparableConv defaults both kernels to glorotUniform (not glorotNormal).
        default = "glorot_uniform" if defaults == "tfjs" else None
        weights = [
            WeightShape(
                "depthwise_kernel", (*w.kernel, w.channels, mult), "depthwise", default=default
            ),
            WeightShape(
                "pointwise_kernel",
                (*(1,) * n, w.channels * mult, filters),
                "pointwise",
                default=default,
            ),
        ]
        return _result(f, out, filters, w.first, weights)

    return infer


def _tfjs_conv(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
    if config["padding"] == "causal":
        # TF.js 4.22 builds it with the valid output size and throws when it runs
        raise unsupported(
            f"{loc}.padding", "causal", config, "TF.js 4.22 cannot run causal padding"
        )
    if config.get("groups", 1) != 1:
        raise unsupported(
            f"{loc}.groups", config["groups"], config, "TF.js 4.22 has no grouped convolution"
        )


def _tfjs_no_dilation(what: str) -> TfjsHook:
    def hook(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
        if max(config["dilation_rate"]) > 1:
            raise unsupported(
                f"{loc}.dilation_rate",
                config["dilation_rate"],
                config,
                f"TF.js 4.22 {what} ignores dilation_rate",
            )
        if config.get("output_padding") is not None:
            raise unsupported(
                f"{loc}.output_padding",
                config["output_padding"],
                config,
                f"TF.js 4.22 {what} has no output_padding",
            )

    return hook


CONV_FIELDS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate")
_TAIL = ("activation", "use_bias")
_NO_TFJS = "TF.js 4.22 has no {}"
LAYERS: tuple[LayerType, ...] = (
    *(
        LayerType(
            f"conv{n}d",
            f"Conv{n}D",
            _conv(n),
            (*CONV_FIELDS, "groups", *_TAIL),
            ("kernel", "bias"),
            tfjs=_tfjs_conv,
        )
        for n in (1, 2, 3)
    ),
    *(
        LayerType(
            f"conv{n}d_transpose",
            f"Conv{n}DTranspose",
            _transpose(n),
            (*CONV_FIELDS, "output_padding", *_TAIL),
            ("kernel", "bias"),
            tfjs_unsupported=_NO_TFJS.format("Conv1DTranspose") if n == 1 else None,
            tfjs=_tfjs_no_dilation(f"Conv{n}DTranspose"),
        )
        for n in (1, 2, 3)
    ),
    *(
        LayerType(
            f"depthwise_conv{n}d",
            f"DepthwiseConv{n}D",
            _depthwise(n),
            ("depth_multiplier", *CONV_FIELDS[1:], *_TAIL),
            ("depthwise", "bias"),
            tfjs_unsupported=_NO_TFJS.format("DepthwiseConv1D") if n == 1 else None,
            tfjs=_tfjs_no_dilation("DepthwiseConv2D"),
        )
        for n in (1, 2)
    ),
    *(
        LayerType(
            f"separable_conv{n}d",
            f"SeparableConv{n}D",
            _separable(n),
            ("depth_multiplier", *CONV_FIELDS, *_TAIL),
            ("depthwise", "pointwise", "bias"),
            tfjs_unsupported=_NO_TFJS.format("SeparableConv1D") if n == 1 else None,
        )
        for n in (1, 2)
    ),
)
