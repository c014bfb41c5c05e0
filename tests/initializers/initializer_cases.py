"""Shared tables for the engine tests: every scheme with shapes it accepts."""

from __future__ import annotations

from typing import Any

from app.initializers import catalog

ENTRIES: list[dict[str, Any]] = catalog()
NAMES: list[str] = [e["name"] for e in ENTRIES]
BY_NAME: dict[str, dict[str, Any]] = {e["name"]: e for e in ENTRIES}

# Shapes of every rank a scheme may accept (its own rank limits decide which apply).
_SHAPES: dict[int, list[tuple[int, ...]]] = {
    0: [()],
    1: [(7,)],
    2: [(16, 24), (24, 16)],
    3: [(3, 6, 10)],
    4: [(3, 3, 8, 16)],
    5: [(2, 3, 3, 4, 8)],
}
# Schemes whose shape is PyTorch's (out, in, *spatial) and needs out % groups == 0.
_SPECIAL: dict[str, list[tuple[int, ...]]] = {
    "dirac": [(6, 4, 5), (16, 8, 3, 3), (8, 4, 3, 3, 3)],
    # Keras STFTSpectrogram kernels: (frame_length, 1, fft_length // 2 + 1).
    "stft": [(16, 1, 9), (5, 1, 2)],
}


def shapes_for(name: str) -> list[tuple[int, ...]]:
    if name in _SPECIAL:
        return _SPECIAL[name]
    rank = BY_NAME[name]["rank"]
    low, high = rank["minimum"], rank["maximum"] if rank["maximum"] is not None else 5
    return [s for r in range(low, high + 1) for s in _SHAPES[r]]


def cases() -> list[tuple[str, tuple[int, ...], str]]:
    return [
        (name, shape, dtype)
        for name in NAMES
        for shape in shapes_for(name)
        for dtype in BY_NAME[name]["dtypes"]
    ]
