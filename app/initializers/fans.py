"""Fan computation.

Two kernel layouts are understood:

- ``keras``: ``(*spatial, in, out)``. Rank 0 → (1, 1); rank 1 → (n, n); rank 2 →
  (shape[0], shape[1]); rank ≥ 3 → receptive = prod(shape[:-2]),
  fan_in = shape[-2]·receptive, fan_out = shape[-1]·receptive (Keras ``compute_fans``).
- ``torch``: ``(out, in, *spatial)``. fan_in = shape[1]·prod(shape[2:]),
  fan_out = shape[0]·prod(shape[2:]) (``torch.nn.init._calculate_fan_in_and_fan_out``);
  PyTorch refuses rank < 2, and so does initlab.

Explicit ``fan_in`` / ``fan_out`` override whatever the layout gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.initializers.errors import InitializerError

LAYOUTS: tuple[str, ...] = ("keras", "torch")
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
