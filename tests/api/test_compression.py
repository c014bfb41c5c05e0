"""gzip policy (app/api/compression.py): JSON at level 1 when the client accepts gzip; binary
tensors only with ``?compress=gzip``; decoded bodies equal the identity encoding's."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.compression import accepts_gzip

Decode = Callable[[httpx.Response], np.ndarray]
Equal = Callable[[np.ndarray, np.ndarray], bool]

BIG = "/v1/tensors?shape=200,200&initializer=he_normal&seed=1"  # JSON ~0.8 MB, binary 160 KB
GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


def wire(client: TestClient, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decoded by httpx)."""
    with client.stream("GET", url, headers=headers) as resp:
        return resp, b"".join(resp.iter_raw())


def test_json_is_gzipped_at_level_1_when_the_client_accepts_gzip(client: TestClient) -> None:
    resp, raw = wire(client, BIG, GZIP)
    plain = client.get(BIG, headers=IDENTITY)
    assert resp.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in resp.headers["vary"].lower()
    assert gzip.decompress(raw) == plain.content
    assert int(resp.headers["content-length"]) == len(raw) < len(plain.content) // 2
    assert raw[8] == 4  # gzip XFL: 4 = the fastest level, 2 = the best
    # The compressed representation has a weak ETag; the identity one keeps the strong one.
    assert resp.headers["etag"] == "W/" + plain.headers["etag"]
    assert "content-encoding" not in plain.headers
    assert "accept-encoding" in plain.headers["vary"].lower()


def test_weak_etag_of_a_gzipped_response_revalidates(client: TestClient) -> None:
    etag = client.get(BIG, headers=GZIP).headers["etag"]
    assert etag.startswith("W/")
    again = client.get(BIG, headers={**GZIP, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize("fmt", ["binary", "npy", "safetensors"])
def test_binary_formats_are_not_gzipped_unless_asked(
    client: TestClient, fmt: str, decode: Decode, bitwise_equal: Equal
) -> None:
    resp, raw = wire(client, f"{BIG}&format={fmt}", GZIP)
    assert "content-encoding" not in resp.headers
    assert int(resp.headers["content-length"]) == len(raw)
    # Without ?compress=gzip the bytes never depend on Accept-Encoding.
    assert "accept-encoding" not in resp.headers.get("vary", "").lower()
    opted, opted_raw = wire(client, f"{BIG}&format={fmt}&compress=gzip", GZIP)
    assert opted.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in opted.headers["vary"].lower()
    assert "content-length" not in opted.headers  # a streamed body: compressed as one stream
    assert gzip.decompress(opted_raw) == raw
    decoded = client.get(f"{BIG}&format={fmt}&compress=gzip", headers=GZIP)
    assert bitwise_equal(decode(decoded), decode(client.get(f"{BIG}&format={fmt}")))


def test_zeros_opted_in_compress_to_almost_nothing(client: TestClient) -> None:
    url = "/v1/tensors?shape=256,256&initializer=zeros&format=binary&compress=gzip"
    resp, raw = wire(client, url, GZIP)
    assert resp.headers["content-encoding"] == "gzip"
    assert len(raw) < 2000 and gzip.decompress(raw) == bytes(256 * 256 * 4)


@pytest.mark.parametrize(
    "accept_encoding", ["identity", "gzip;q=0", "br", "*;q=0", "deflate, gzip;q=0.0"]
)
def test_no_gzip_unless_accept_encoding_allows_it(client: TestClient, accept_encoding: str) -> None:
    for url in (BIG, f"{BIG}&format=binary&compress=gzip"):
        resp, raw = wire(client, url, {"Accept-Encoding": accept_encoding})
        assert "content-encoding" not in resp.headers, (url, accept_encoding)
        assert int(resp.headers["content-length"]) == len(raw)


def test_small_bodies_are_not_gzipped(client: TestClient) -> None:
    resp, raw = wire(client, "/v1/tensors?shape=3,3&initializer=he_normal&seed=1", GZIP)
    assert len(raw) < 1024
    assert "content-encoding" not in resp.headers
    assert raw.startswith(b'{"shape":[3,3]')


def test_problem_json_and_the_catalog_are_gzipped(client: TestClient) -> None:
    catalog, raw = wire(client, "/v1/initializers", GZIP)
    assert catalog.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == client.get("/v1/initializers", headers=IDENTITY).content


def test_compress_parameter_is_validated(client: TestClient) -> None:
    resp = client.get(f"{BIG}&compress=zstd")
    assert resp.status_code == 422
    error = resp.json()["errors"][0]
    assert error["loc"] == ["query", "compress"] and error["input"] == "zstd"
    post = client.post("/v1/tensors?compress=brotli", json={"shape": [2, 2]})
    assert post.status_code == 422
    assert post.json()["errors"][0]["loc"] == ["query", "compress"]


def test_post_json_is_gzipped_too(client: TestClient) -> None:
    body = {"shape": [200, 200], "initializer": "glorot_uniform", "seed": 4}
    zipped = client.post("/v1/tensors", json=body, headers=GZIP)
    plain = client.post("/v1/tensors", json=body, headers=IDENTITY)
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("GZIP;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("br, *;q=0.1", True),
        ("gzip;q=0, *", False),
        ("identity", False),
        ("", False),
        ("gzip;q=abc", False),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def _vary(resp: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in resp.headers.get("vary", "").split(",") if v.strip()}


SMALL = "/v1/tensors?shape=3,3&initializer=he_normal&seed=1"  # under 1 KiB: never gzipped


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        (BIG, GZIP),  # gzipped: weak ETag
        (BIG, IDENTITY),
        (SMALL, GZIP),  # gzip allowed, but too small: the strong ETag
        (f"{BIG}&format=binary", GZIP),  # never compressed: no Vary: Accept-Encoding
        (f"{BIG}&format=npy&compress=gzip", GZIP),
        (f"{BIG}&format=npy&compress=gzip", IDENTITY),
    ],
)
def test_a_304_carries_the_etag_and_vary_of_the_200(
    client: TestClient, url: str, headers: dict[str, str]
) -> None:
    # RFC 9110 §15.4.5: a 304 sends the ETag and Vary a 200 to the same request would.
    ok = client.get(url, headers=headers)
    for held in (ok.headers["etag"], f'"other", {ok.headers["etag"]}'):
        again = client.get(url, headers={**headers, "If-None-Match": held})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == ok.headers["etag"]
        assert _vary(again) == _vary(ok)
        assert "content-type" not in again.headers  # no representation metadata


def test_a_304_validates_the_representation_the_client_holds(client: TestClient) -> None:
    strong = client.get(BIG, headers=IDENTITY).headers["etag"]
    weak = client.get(BIG, headers=GZIP).headers["etag"]
    assert weak == "W/" + strong
    # A client holding the identity bytes keeps the strong validator, even asking for gzip;
    # one holding the gzip bytes gets the weak one only while it still accepts gzip.
    assert client.get(BIG, headers={**GZIP, "If-None-Match": strong}).headers["etag"] == strong
    assert client.get(BIG, headers={**IDENTITY, "If-None-Match": weak}).headers["etag"] == strong
    for held in (strong, weak):
        resp = client.get(BIG, headers={**IDENTITY, "If-None-Match": held})
        assert resp.status_code == 304 and "accept-encoding" in _vary(resp)


def test_a_model_files_304_carries_the_etag_and_vary_of_the_200(client: TestClient) -> None:
    # The models route names the file's media type on its 304; a binary file is never
    # compressed without ?compress=gzip. A client holding the identity model.json (strong
    # tag) is told the same Vary too.
    spec = {"input_shape": [20], "seed": 3, "layers": [{"type": "dense", "units": 16}] * 3}
    links = client.post("/v1/models", json=spec).json()["links"]
    model_json = client.get(links["model_json"], headers=GZIP)
    assert model_json.headers["content-encoding"] == "gzip"
    weights = client.get(links["weights_bin"], headers=GZIP)
    assert "content-encoding" not in weights.headers
    for url, ok in ((links["model_json"], model_json), (links["weights_bin"], weights)):
        again = client.get(url, headers={**GZIP, "If-None-Match": ok.headers["etag"]})
        assert again.status_code == 304
        assert again.headers["etag"] == ok.headers["etag"]
        assert _vary(again) == _vary(ok)
    identity = client.get(links["model_json"], headers={"Accept-Encoding": "identity"})
    strong = identity.headers["etag"]
    again = client.get(links["model_json"], headers={**GZIP, "If-None-Match": strong})
    assert again.status_code == 304 and "accept-encoding" in _vary(again)
