"""Fan computation.

Two kernel layouts are understood:

- ``keras``: ``(*spatial, in, out)``. Rank 0 → (1, 1); rank 1 → (n, n); rank 2 →
  (shape[0], shape[1]); rank ≥ 3 → receptive = prod(shape[:-2]),
  fan_in = shape[-2]·receptive, fan_out = shape[-1]·receptive (Keras ``compute_fans``).
- ``torch``: ``(out, in, *spatial)``. fan_in = shape[1]·prod(shape[2:]),
  fan_out = shape[0]·prod(shape[2:]) (``torch.nn.init._calculate_fan_in_and_fan_out``);
  PyTorch refuses rank < 2, and so does initlab.

Explicit ``fan_in`` / ``fan_out`` override whatever the layout gives. Axis parameters name the
fans' axes instead: Keras 3's ``input_axes`` / ``output_axes`` (``keras_axes_fans``) and JAX's
``in_axis`` / ``out_axis`` / ``batch_axis`` (``jax_axes_fans``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from app.initializers.errors import InitializerError

LAYOUTS: tuple[str, ...] = ("keras", "torch")
JAX_AXES: tuple[str, ...] = ("in_axis", "out_axis", "batch_axis")
_JAX_AXES_DEFAULT: dict[str, int | list[int]] = {"in_axis": -2, "out_axis": -1, "batch_axis": []}
FAN_MAX = 2**63 - 1  # explicit fans beyond this are refused (they stay exact in float64 math)


def check_fan(field: str, value: object) -> int | None:
    """Validate an explicit fan override: None or a positive integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InitializerError(field, value, "must be a positive integer or null")
    if value < 1:
        raise InitializerError(field, value, "must be ≥ 1")
    if value > FAN_MAX:
        raise InitializerError(field, value, "must be ≤ 2**63 - 1")
    return int(value)


def check_layout(layout: object) -> str:
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise InitializerError("layout", layout, f"must be one of {', '.join(LAYOUTS)}")
    return layout


def layout_fans(shape: Sequence[int], layout: str) -> tuple[int, int]:
    """Fans of ``shape`` in ``layout`` (no overrides)."""
    rank = len(shape)
    if layout == "torch":
        if rank < 2:
            raise InitializerError(
                "shape",
                list(shape),
                f"layout 'torch' needs rank ≥ 2 (weight (out, in, *spatial)); rank {rank} "
                "has no fan_in/fan_out in PyTorch — use layout 'keras' or give fan_in and "
                "fan_out explicitly",
            )
        receptive = math.prod(shape[2:])
        return int(shape[1]) * receptive, int(shape[0]) * receptive
    if rank == 0:
        return 1, 1
    if rank == 1:
        return int(shape[0]), int(shape[0])
    if rank == 2:
        return int(shape[0]), int(shape[1])
    receptive = math.prod(shape[:-2])
    return int(shape[-2]) * receptive, int(shape[-1]) * receptive


def tfjs_fans(shape: Sequence[int]) -> tuple[float, float]:
    """The fans TF.js 4.22's ``computeFans`` gives (``channelsLast``): Keras's at ranks 2–5,
    sqrt(prod(shape)) for both at rank 0, 1 and above 5."""
    if 2 <= len(shape) <= 5:
        return layout_fans(shape, "keras")
    root = math.sqrt(math.prod(shape))
    return root, root


def compute_fans(
    shape: Sequence[int],
    layout: str = "keras",
    fan_in: int | None = None,
    fan_out: int | None = None,
) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` for ``shape`` in ``layout``, explicit values winning."""
    check_layout(layout)
    fan_in = check_fan("fan_in", fan_in)
    fan_out = check_fan("fan_out", fan_out)
    if fan_in is not None and fan_out is not None:
        return fan_in, fan_out
    computed_in, computed_out = layout_fans(shape, layout)
    return (
        fan_in if fan_in is not None else computed_in,
        fan_out if fan_out is not None else computed_out,
    )


def axis_list(value: int | list[int]) -> list[int]:
    """An axis or a list of axes, as a list."""
    return [value] if isinstance(value, int) else list(value)


def _axes_product(shape: Sequence[int], axes: list[int], field: str) -> tuple[int, set[int]]:
    rank = len(shape)
    product = 1
    seen: set[int] = set()
    for axis in axes:
        if not -rank <= axis < rank:
            raise InitializerError(field, axes, f"axis {axis} is out of range for rank {rank}")
        if axis % rank in seen:
            raise InitializerError(field, axes, f"axis {axis} is named twice")
        seen.add(axis % rank)
        product *= shape[axis]
    return product, seen


def keras_axes_fans(
    shape: Sequence[int], input_axes: list[int], output_axes: list[int], field: str
) -> tuple[int, int]:
    """Keras 3: fan_in = prod(shape[input_axes]), fan_out = prod(shape[output_axes])."""
    rank = len(shape)
    fans = []
    for key, axes in (("input_axes", input_axes), ("output_axes", output_axes)):
        product = 1
        for axis in axes:
            if not -rank <= axis < rank:
                raise InitializerError(
                    f"{field}.{key}", axes, f"axis {axis} is out of range for rank {rank}"
                )
            product *= shape[axis]
        fans.append(product)
    return fans[0], fans[1]


def jax_axes_fans(shape: Sequence[int], axes: Mapping[str, Any], field: str) -> tuple[int, int]:
    """JAX ``_compute_fans``: receptive = the product of the axes in no group,
    fan_in = prod(in) · receptive, fan_out = prod(out) · receptive (distinct axes only)."""
    if len(shape) <= 1 and axes["in_axis"] is None:
        raise InitializerError(
            "shape",
            list(shape),
            f"JAX cannot compute the fans of a rank-{len(shape)} tensor with the default "
            "in_axis (-2): give in_axis and out_axis explicitly",
        )
    sizes: dict[str, int] = {}
    used: set[int] = set()
    for key in JAX_AXES:
        value = axes[key] if axes[key] is not None else _JAX_AXES_DEFAULT[key]
        sizes[key], seen = _axes_product(shape, axis_list(value), f"{field}.{key}")
        if seen & used:
            raise InitializerError(
                f"{field}.{key}", value, "in_axis, out_axis and batch_axis must not share an axis"
            )
        used |= seen
    receptive = math.prod(d for i, d in enumerate(shape) if i not in used)
    return sizes["in_axis"] * receptive, sizes["out_axis"] * receptive
