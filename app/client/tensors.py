"""``/v1/tensors`` to NumPy: the raw little-endian bytes (or the ``.npy``) the server sent.

Requests go out as ``GET`` (every field has a query form, an initializer object as JSON), so
they are retried like any read and cached by the server's immutable ``ETag`` when seeded.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any, TypedDict, Unpack

import httpx
import numpy as np

from app.client.http import Transport
from app.client.types import Tensor

# ?format= values and the suffix of a file that format is saved as (docs/client.md).
FORMATS = {"binary": ".bin", "npy": ".npy", "safetensors": ".safetensors", "json": ".json"}


def _dtype(name: str) -> np.dtype[Any]:
    """The NumPy dtype of an ``X-Tensor-Dtype`` (bfloat16 needs the ml_dtypes package)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name).newbyteorder("<")


def format_for(path: str) -> str:
    """The tensor format a file name asks for by its suffix (raw bytes if none matches)."""
    for fmt, suffix in FORMATS.items():
        if path.endswith(suffix):
            return fmt
    return "binary"


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _float_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class TensorOptions(TypedDict, total=False):
    """The optional fields of a tensor request (api.md ``/v1/tensors``); absent ones take the
    server's defaults (``dtype`` ``float32``, ``layout`` ``keras``, fans from the shape), as do
    None ones."""

    seed: int | None
    dtype: str | None
    layout: str | None
    fan_in: int | None
    fan_out: int | None
    compat: str | None


class Tensors:
    """``client.tensors``."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def fetch(
        self,
        shape: Sequence[int],
        initializer: str | dict[str, Any] = "glorot_uniform",
        *,
        format: str = "binary",
        stats: bool = False,
        **options: Unpack[TensorOptions],
    ) -> httpx.Response:
        """The server's response in ``format`` (``binary``, ``npy``, ``safetensors``,
        ``json``), bytes untouched."""
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        params: dict[str, str] = {
            "shape": ",".join(str(int(n)) for n in shape) if len(shape) else "[]",
            "initializer": initializer
            if isinstance(initializer, str)
            else json.dumps(initializer, separators=(",", ":")),
            "format": format,
        }
        params.update({k: str(v) for k, v in options.items() if v is not None})
        if stats:
            params["stats"] = "true"
        return self._t.request("GET", "/v1/tensors", params=params)

    def get(
        self,
        shape: Sequence[int],
        initializer: str | dict[str, Any] = "glorot_uniform",
        *,
        format: str = "binary",
        **options: Unpack[TensorOptions],
    ) -> Tensor:
        """An initialized tensor as a NumPy array, read from raw bytes (``binary``, default)
        or a ``.npy`` (``npy``); the seed and resolved initializer from the headers."""
        if format not in ("binary", "npy"):
            raise ValueError(f"format must be 'binary' or 'npy', not {format!r}")
        response = self.fetch(shape, initializer, format=format, **options)
        dims = response.headers.get("x-tensor-shape", "")
        if format == "npy":
            array = np.load(io.BytesIO(response.content), allow_pickle=False)
        else:
            array = np.frombuffer(
                response.content,
                dtype=_dtype(
                    response.headers.get("x-tensor-dtype", options.get("dtype") or "float32")
                ),
            ).reshape([int(d) for d in dims.split(",")] if dims else [])
        resolved = response.headers.get("x-initializer")
        return Tensor(
            array=array,
            seed=_int_header(response, "x-seed"),
            initializer=json.loads(resolved) if resolved else None,
            fan_in=_float_header(response, "x-fan-in"),
            fan_out=_float_header(response, "x-fan-out"),
        )
