"""``weights.bin`` in TF.js's shards: ``group1-shard{i}of{n}.bin`` of 4 MiB each (the last
shorter), the converter's default (tfjs-converter ``--weight_shard_size_bytes``). A weight
may straddle shards; TF.js concatenates a group's ``paths`` before reading the weights.

A model of at most one shard keeps the single path ``weights.bin``. A shard is produced from
the weights it overlaps alone. TF.js asks for every shard at once, and a weight straddling k
shards is wanted by k requests together: :class:`RecentWeights` generates it once for all of
them (single flight) and keeps the newest for the next shard, so the process holds about the
largest weight instead of k copies, and generates each weight once instead of k times.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future

import numpy as np

from app.models.artifacts import weight_values
from app.models.spec import ModelPlan, Weight

SHARD_BYTES = 4 * 1024 * 1024
WHOLE = "weights.bin"


class RecentWeights:
    """Weights by ``(model id, manifest index)``: generated once however many callers want one
    at the same time; the newest is kept for the next shard (it holds that weight's tail)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], Future[np.ndarray]] = {}

    def get(self, model_id: str, index: int, weight: Weight) -> np.ndarray:
        key = (model_id, index)
        with self._lock:
            entry = self._entries.get(key)
            mine = entry is None
            if entry is None:
                entry = self._entries[key] = Future()
        if not mine:
            return entry.result()
        try:
            values = weight_values(weight)
            values.flags.writeable = False  # shared by every caller
        except BaseException as exc:
            with self._lock:
                self._entries.pop(key, None)
            entry.set_exception(exc)
            raise
        entry.set_result(values)
        with self._lock:
            # Finished entries other than this newest one go (callers holding them keep them).
            for other in [k for k, f in self._entries.items() if f.done() and k != key]:
                del self._entries[other]
        return values


RECENT = RecentWeights()


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
    model_id = plan.id

    def chunks() -> Iterator[bytes | memoryview]:
        offset = 0
        for i, weight in enumerate(plan.weights):
            size = 4 * weight.size
            lo, hi = max(start, offset), min(end, offset + size)
            if lo < hi:
                values = RECENT.get(model_id, i, weight).reshape(-1).view(np.uint8)
                yield values[lo - offset : hi - offset].data
                del values
            offset += size
            if offset >= end:
                break

    return end - start, chunks()
