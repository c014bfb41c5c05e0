"""``weights.bin`` in TF.js's shards: ``group1-shard{i}of{n}.bin`` of 4 MiB each (the last
shorter), the converter's default (tfjs-converter ``--weight_shard_size_bytes``). A weight
may straddle shards; TF.js concatenates a group's ``paths`` before reading the weights.

A model of at most one shard keeps the single path ``weights.bin``. A shard is produced from
the weights it overlaps alone (memory about the largest of them); a weight spanning k shards
is generated once per shard it appears in.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from app.models.artifacts import weight_values
from app.models.spec import ModelPlan

SHARD_BYTES = 4 * 1024 * 1024
WHOLE = "weights.bin"


def shard_count(plan: ModelPlan) -> int:
    return max(1, -(-plan.nbytes // SHARD_BYTES))


def shard_name(index: int, count: int) -> str:
    """The file name of shard ``index`` (1-based) of ``count``."""
    return f"group1-shard{index}of{count}.bin"


def weights_paths(plan: ModelPlan) -> list[str]:
    """The weights group's ``paths`` in ``model.json``, relative to it."""
    count = shard_count(plan)
    if count == 1:
        return [WHOLE]
    return [shard_name(i, count) for i in range(1, count + 1)]


def shard_stream(plan: ModelPlan, index: int) -> tuple[int, Iterator[bytes | memoryview]]:
    """``(Content-Length, chunks)`` of shard ``index`` (1-based, checked by the caller)."""
    start = (index - 1) * SHARD_BYTES
    end = min(start + SHARD_BYTES, plan.nbytes)

    def chunks() -> Iterator[bytes | memoryview]:
        offset = 0
        for weight in plan.weights:
            size = 4 * weight.size
            lo, hi = max(start, offset), min(end, offset + size)
            if lo < hi:
                values = weight_values(weight).reshape(-1).view(np.uint8)
                yield values[lo - offset : hi - offset].data
                del values
            offset += size
            if offset >= end:
                break

    return end - start, chunks()
