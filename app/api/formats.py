"""Tensor encodings — JSON (orjson), raw octet-stream, ``.npy``, safetensors — and Accept
negotiation.

Binary encodings never copy the tensor: the response body is the array's own buffer,
preceded by a small header chunk where the format needs one.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.errors import NotAcceptableError

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
NPY = "application/x-npy"
SAFETENSORS = "application/vnd.safetensors"

# ?format= value -> media type; the order is the server's preference on equal q-values.
FORMATS: dict[str, str] = {
    "json": JSON,
    "binary": OCTET_STREAM,
    "npy": NPY,
    "safetensors": SAFETENSORS,
}
MEDIA_TYPES: tuple[str, ...] = tuple(FORMATS.values())

_SAFETENSORS_DTYPES = {
    "float32": "F32",
    "float64": "F64",
    "float16": "F16",
    "bfloat16": "BF16",
    "int32": "I32",
}


def weighted_items(header: str) -> list[tuple[str, float]]:
    """A comma-separated header with q-values (``Accept``, ``Accept-Encoding``) →
    ``[(item lowercased, q)]``; a malformed or out-of-range q counts as 0."""
    items = []
    for item in header.split(","):
        parts = item.split(";")
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not math.isfinite(q) or not 0.0 <= q <= 1.0:
                    q = 0.0
        items.append((parts[0].strip().lower(), q))
    return items


def _parse_accept(accept: str) -> list[tuple[str, str, float]]:
    """``Accept`` → ``[(type, subtype, q)]``; malformed ranges are skipped."""
    ranges = []
    for media, q in weighted_items(accept):
        main, slash, sub = media.partition("/")
        if slash and main and sub:
            ranges.append((main, sub, q))
    return ranges


def negotiate(accept: str | None, available: Sequence[str] = MEDIA_TYPES) -> str:
    """Pick the media type for ``accept`` (RFC 9110 §12.5.1: the most specific matching
    range gives each type its q; highest q wins, ties go to the order of ``available``).

    Raises :class:`NotAcceptableError` (406) listing what is available.
    """
    if accept is None or not accept.strip():
        return available[0]
    ranges = _parse_accept(accept)
    best, best_q = None, 0.0
    for media in available:
        main, _, sub = media.partition("/")
        q, specificity = None, -1
        for r_main, r_sub, r_q in ranges:
            if r_main == main and r_sub == sub:
                s = 2
            elif r_main == main and r_sub == "*":
                s = 1
            elif r_main == "*" and r_sub == "*":
                s = 0
            else:
                continue
            if s > specificity:
                q, specificity = r_q, s
        if q is not None and q > best_q:
            best, best_q = media, q
    if best is None:
        shown = accept if len(accept) <= 200 else accept[:200] + "..."
        formats = ", ".join(available)  # a file of one type (a job output, a model file)
        if tuple(available) == MEDIA_TYPES:  # the tensor encodings, which ?format= names too
            formats = ", ".join(f"{m} (?format={f})" for f, m in FORMATS.items())
        raise NotAcceptableError(
            f"Cannot produce any type in Accept: {shown!r}. Available: {formats}.",
            errors=[
                {"loc": ["header", "accept"], "msg": "no acceptable media type", "input": shown}
            ],
        )
    return best


def etag_matches(if_none_match: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110 §13.1.2)."""
    value = if_none_match.strip()
    if value == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in value.split(","))


def little_endian(arr: np.ndarray) -> np.ndarray:
    """``arr`` as C-contiguous little-endian (a no-op on little-endian hosts)."""
    if sys.byteorder == "big" and arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr)


def raw_view(arr: np.ndarray) -> memoryview:
    """The array's bytes as a flat memoryview, without copying (works for bfloat16 too)."""
    return little_endian(arr).reshape(-1).view(np.uint8).data


def json_values(arr: np.ndarray) -> np.ndarray:
    """A flat view orjson can serialize (bfloat16 widens exactly to float32)."""
    flat = arr.reshape(-1)
    if flat.dtype == ml_dtypes.bfloat16:
        flat = flat.astype(np.float32)
    return flat


def tensor_stats(arr: np.ndarray, expected_std: float | None) -> dict[str, float | None]:
    """Mean, std, min and max of the values (float64 accumulation)."""
    if arr.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "expected_std": expected_std}
    values = arr.astype(np.float32, copy=False) if arr.dtype == ml_dtypes.bfloat16 else arr
    return {
        "mean": float(np.mean(values, dtype=np.float64)),
        "std": float(np.std(values, dtype=np.float64)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "expected_std": expected_std,
    }


def encode_json(meta: dict[str, Any], arr: np.ndarray) -> bytes:
    """``meta`` plus ``"values"`` (flat, row-major) as JSON bytes."""
    return orjson.dumps({**meta, "values": json_values(arr)}, option=orjson.OPT_SERIALIZE_NUMPY)


def npy_header(arr: np.ndarray) -> bytes:
    """The ``.npy`` (format 1.0/2.0) header for ``arr``; the data follows it unchanged.

    bfloat16 has no NumPy type code: its ``descr`` is the type name ``'bfloat16'``, which
    ``numpy.load`` reads as ``ml_dtypes.bfloat16`` once ml_dtypes is imported (without it,
    numpy.load raises ValueError; the data are then little-endian uint16 bit patterns, see
    docs/schemes.md).
    """
    if arr.dtype == ml_dtypes.bfloat16:
        descr = "bfloat16"
    else:
        descr = np.lib.format.header_data_from_array_1_0(arr)["descr"]
    text = repr({"descr": descr, "fortran_order": False, "shape": tuple(arr.shape)}).encode(
        "latin-1"
    )
    # magic(6) + version(2) + length(2 or 4) + text + padding + "\n" is a multiple of 64.
    for version, fmt in (((1, 0), "<H"), ((2, 0), "<I")):
        prefix = 6 + 2 + struct.calcsize(fmt)
        total = prefix + len(text) + 1
        padded = text + b" " * (-total % 64) + b"\n"
        if len(padded) < 2 ** (8 * struct.calcsize(fmt)):
            return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(padded)) + padded
    raise ValueError("npy header too long")  # unreachable: shapes are rank-limited


def safetensors_header(arr: np.ndarray, dtype: str, metadata: dict[str, str]) -> bytes:
    """The safetensors header (u64 length + JSON, space-padded to 8 bytes) for one tensor
    named ``weight``; the raw data follows it unchanged."""
    doc = {
        "__metadata__": metadata,
        "weight": {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": list(arr.shape),
            "data_offsets": [0, arr.nbytes],
        },
    }
    text = orjson.dumps(doc)
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


class BufferResponse(Response):
    """A body made of a small ``head`` (format header; may be empty) and ``data`` (the
    array's own buffer), sent as two body messages without joining them.

    Sending ``head`` first is deliberate even when it is empty: Starlette's GZipMiddleware
    compares the *first* body chunk with ``!=``, which for a memoryview is an element-wise
    comparison (about 12 ms per 4 MB); later chunks pass through untouched. ``Content-Length``
    is the total size. Bodies up to ``JOIN_BELOW`` bytes are joined into one message instead
    (copying them costs less than streaming them, and keeps GZip's ``minimum_size`` working).
    """

    JOIN_BELOW = 64 * 1024

    def __init__(
        self,
        head: bytes,
        data: memoryview,
        *,
        media_type: str,
        headers: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> None:
        self.head: bytes = head
        self.data: memoryview | None = data
        self.body = b""
        if len(head) + len(data) <= self.JOIN_BELOW:
            self.body, self.data = head + data.tobytes(), None
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        length = str(len(head) + len(data))  # of the arguments: the same either way
        self.init_headers({**(headers or {}), "content-length": length})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self.data is None:
            await send({"type": "http.response.body", "body": self.body})
            return
        await send({"type": "http.response.body", "body": self.head, "more_body": True})
        await send({"type": "http.response.body", "body": self.data, "more_body": False})
