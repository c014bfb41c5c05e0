"""Fixtures for the HTTP tests: an in-process app and decoders for every tensor format."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import ml_dtypes
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "int32": np.int32,
}


def decode_tensor(resp: httpx.Response) -> np.ndarray:
    """The tensor in a response, whatever its format, as an array of the reported dtype."""
    media = resp.headers["content-type"].split(";")[0]
    if media == "application/json":
        body = resp.json()
        dtype = DTYPES[body["dtype"]]
        values = np.array(body["values"], dtype=np.float64 if dtype != np.int32 else np.int64)
        return values.astype(dtype).reshape(body["shape"])
    dtype = DTYPES[resp.headers["x-tensor-dtype"]]
    shape_text = resp.headers["x-tensor-shape"]
    shape = [int(d) for d in shape_text.split(",")] if shape_text else []
    if media == "application/octet-stream":
        return np.frombuffer(resp.content, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    if media == "application/x-npy":
        arr = np.load(io.BytesIO(resp.content), allow_pickle=False)
        return arr.view(dtype) if arr.dtype.kind == "V" else arr
    if media == "application/vnd.safetensors":
        # Parse per the format spec (safetensors.numpy cannot hold bfloat16); tests that the
        # reference reader agrees live next to the format tests.
        n = int.from_bytes(resp.content[:8], "little")
        header = json.loads(resp.content[8 : 8 + n])
        start, end = header["weight"]["data_offsets"]
        data = resp.content[8 + n + start : 8 + n + end]
        return np.frombuffer(data, dtype=dtype).reshape(header["weight"]["shape"])
    raise AssertionError(f"unexpected content type {media}")


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaN-safe, dtype-aware)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The real app in-process, default settings."""
    with TestClient(create_app(Settings())) as c:
        yield c


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """``make_client(max_elements_json=10, ...)``: an app with overridden settings."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        c = TestClient(create_app(Settings(**overrides)))
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def decode() -> Callable[[httpx.Response], np.ndarray]:
    return decode_tensor


@pytest.fixture
def bitwise_equal() -> Callable[[np.ndarray, np.ndarray], bool]:
    return same_bytes
