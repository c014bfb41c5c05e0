"""``/v1/tensors`` through a real uvicorn process: bytes on the wire, across processes."""

from __future__ import annotations

import concurrent.futures
import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration

URL = "/v1/tensors?shape=300,200&initializer=he_normal&seed=42"


def test_same_request_same_bytes_in_two_server_processes(
    api_server: str, start_api: Callable[..., object]
) -> None:
    other = start_api()
    for fmt in ("json", "binary", "npy", "safetensors"):
        a = httpx.get(f"{api_server}{URL}&format={fmt}")
        b = httpx.get(f"{other.url}{URL}&format={fmt}")  # type: ignore[attr-defined]
        assert a.status_code == b.status_code == 200
        assert a.content == b.content, fmt
        assert a.headers["etag"] == b.headers["etag"]


def test_formats_agree_on_the_wire(api_server: str) -> None:
    with httpx.Client(base_url=api_server, headers={"Accept-Encoding": "identity"}) as c:
        raw = c.get(URL, headers={"Accept": "application/octet-stream"})
        assert raw.headers["content-length"] == str(300 * 200 * 4)
        values = np.frombuffer(raw.content, "<f4").reshape(300, 200)
        as_json = np.array(c.get(URL).json()["values"], np.float32).reshape(300, 200)
        as_npy = np.load(io.BytesIO(c.get(URL + "&format=npy").content))
        assert np.array_equal(values, as_json)
        assert np.array_equal(values, as_npy)


def test_gzip_on_the_wire(api_server: str) -> None:
    with httpx.Client(base_url=api_server) as c:
        zipped = c.get(URL, headers={"Accept-Encoding": "gzip"})
        plain = c.get(URL, headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content


def test_conditional_get_on_the_wire(api_server: str) -> None:
    first = httpx.get(api_server + URL)
    again = httpx.get(api_server + URL, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_large_and_small_requests_served_concurrently(api_server: str) -> None:
    # A large generation (threadpool path) and many small ones (inline) at once: all answer,
    # and each gets its own correct tensor.
    big = f"{api_server}/v1/tensors?shape=1024,1024&initializer=orthogonal&seed=1&format=binary"
    small = f"{api_server}/v1/tensors?shape=3,3&initializer=he_normal&seed=2&format=binary"
    expected_small = httpx.get(small).content
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        big_future = pool.submit(httpx.get, big, timeout=120)
        smalls = [pool.submit(httpx.get, small) for _ in range(40)]
        big_resp = big_future.result()
        assert all(f.result().content == expected_small for f in smalls)
    assert big_resp.status_code == 200
    q = np.frombuffer(big_resp.content, "<f4").reshape(1024, 1024).astype(np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(1024), atol=1e-4)


def test_refuses_a_terabyte_request_with_413(api_server: str) -> None:
    resp = httpx.get(f"{api_server}/v1/tensors?shape=1000000,1000000&format=binary")
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    # The server is still healthy afterwards (nothing was allocated).
    assert httpx.get(f"{api_server}/healthz").status_code == 200
