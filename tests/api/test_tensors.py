"""``/v1/tensors`` through FastAPI's client: formats, headers, caching, limits, threading."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import safetensors.numpy
import torch
from fastapi.testclient import TestClient
from safetensors import safe_open

FORMATS = {
    "json": "application/json",
    "binary": "application/octet-stream",
    "npy": "application/x-npy",
    "safetensors": "application/vnd.safetensors",
}
Decode = Callable[[httpx.Response], np.ndarray]
Equal = Callable[[np.ndarray, np.ndarray], bool]

CASES = [
    # (initializer, shape, dtype)
    ("he_normal", [5, 7], "float32"),
    ("glorot_uniform", [3, 3, 4, 6], "float64"),
    ("lecun_normal", [16, 8], "float16"),
    ("orthogonal", [6, 4], "bfloat16"),
    ("random_normal", [11], "float32"),
    ("ones", [4, 3], "int32"),
    ("zeros", [0, 5], "float32"),
]


@pytest.mark.parametrize(("initializer", "shape", "dtype"), CASES)
def test_every_format_carries_the_same_values(
    client: TestClient,
    decode: Decode,
    bitwise_equal: Equal,
    initializer: str,
    shape: list[int],
    dtype: str,
) -> None:
    body = {"shape": shape, "initializer": initializer, "seed": 123, "dtype": dtype}
    arrays = {}
    for fmt, media in FORMATS.items():
        resp = client.post(f"/v1/tensors?format={fmt}", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(media)
        if fmt != "json":  # JSON carries these in the body instead
            assert resp.headers["x-tensor-dtype"] == dtype
            assert resp.headers["x-seed"] == "123"
        arrays[fmt] = decode(resp)
    reference = arrays["binary"]
    assert reference.shape == tuple(shape)
    assert reference.size == 0 or np.any(reference != 0) or initializer == "zeros"
    for fmt, arr in arrays.items():
        assert bitwise_equal(arr, reference), fmt


def test_accept_header_selects_the_format_like_the_query(client: TestClient) -> None:
    body = {"shape": [8, 8], "initializer": "he_uniform", "seed": 9}
    for fmt, media in FORMATS.items():
        by_accept = client.post("/v1/tensors", json=body, headers={"Accept": media})
        by_query = client.post(f"/v1/tensors?format={fmt}", json=body)
        assert by_accept.headers["content-type"].startswith(media)
        assert by_accept.content == by_query.content


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("application/octet-stream;q=0.9, application/json;q=0.1", "application/octet-stream"),
        ("application/*;q=0.2, application/x-npy", "application/x-npy"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json"),
        ("application/vnd.safetensors, */*;q=0.1", "application/vnd.safetensors"),
        ("*/*;q=0.5, application/json;q=0", "application/octet-stream"),
        ("", "application/json"),
    ],
)
def test_accept_negotiation_follows_q_values(client: TestClient, accept: str, media: str) -> None:
    resp = client.get("/v1/tensors?shape=2,2&seed=1", headers={"Accept": accept})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(media)


def test_json_body_fields(client: TestClient) -> None:
    resp = client.post(
        "/v1/tensors", json={"shape": [784, 256], "initializer": "HeUniform", "seed": 42}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["shape"] == [784, 256]
    assert body["dtype"] == "float32"
    assert body["seed"] == 42
    assert body["fan_in"] == 784 and body["fan_out"] == 256
    assert body["initializer"]["class_name"]
    assert body["initializer"]["config"]["seed"] == 42
    assert body["tfjs"]["className"]
    assert len(body["values"]) == 784 * 256
    assert "x-tensor-shape" not in resp.headers  # the body says it all


def test_echoed_initializer_reproduces_the_tensor(client: TestClient) -> None:
    first = client.post("/v1/tensors", json={"shape": [9, 5], "initializer": "glorotUniform"})
    assert first.status_code == 200
    body = first.json()
    assert 0 <= body["seed"] <= 2**32 - 1
    # The canonical Keras form carries the seed: posting it back (no top-level seed) or the
    # TF.js form with the top-level seed gives the same values.
    again = client.post("/v1/tensors", json={"shape": [9, 5], "initializer": body["initializer"]})
    via_tfjs = client.post(
        "/v1/tensors", json={"shape": [9, 5], "initializer": body["tfjs"], "seed": body["seed"]}
    )
    assert again.json()["values"] == body["values"]
    assert via_tfjs.json()["values"] == body["values"]


def test_unseeded_requests_draw_fresh_seeds(client: TestClient) -> None:
    seeds = {
        client.post("/v1/tensors", json={"shape": [2], "initializer": "random_normal"}).json()[
            "seed"
        ]
        for _ in range(4)
    }
    assert len(seeds) > 1


def test_a_request_without_initializer_gets_glorot_uniform(client: TestClient) -> None:
    # docs/api.md and docs/schemes.md: Keras's default kernel initializer, as /openapi.json says.
    named = client.post(
        "/v1/tensors", json={"shape": [3, 4], "initializer": "glorot_uniform", "seed": 1}
    ).json()
    for resp in (
        client.post("/v1/tensors", json={"shape": [3, 4], "seed": 1}),
        client.get("/v1/tensors?shape=3,4&seed=1"),
        client.get("/v1/tensors?shape=3,4&seed=1&initializer="),
    ):
        body = resp.json()
        assert body["initializer"]["class_name"] == "GlorotUniform"
        assert body["values"] == named["values"]
    operations = client.get("/openapi.json").json()["paths"]["/v1/tensors"]
    body = operations["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["initializer"]["default"] == "glorot_uniform"
    query = {p["name"]: p["schema"] for p in operations["get"]["parameters"]}
    assert query["initializer"]["default"] == "glorot_uniform"


def test_get_equals_post_and_is_deterministic(client: TestClient) -> None:
    url = "/v1/tensors?shape=64,32&initializer=he_normal&seed=42&dtype=float32&format=binary"
    a, b = client.get(url), client.get(url)
    post = client.post(
        "/v1/tensors?format=binary",
        json={"shape": [64, 32], "initializer": "he_normal", "seed": 42},
    )
    assert a.content == b.content == post.content
    other = client.get(url.replace("seed=42", "seed=43"))
    assert other.content != a.content


def test_get_accepts_initializer_as_json_and_empty_optionals(client: TestClient) -> None:
    ref = orjson.dumps({"class_name": "VarianceScaling", "config": {"scale": 2.0}}).decode()
    resp = client.get(
        "/v1/tensors",
        params={
            "shape": "10,4",
            "initializer": ref,
            "seed": "5",
            "fan_in": "",
            "fan_out": "",
            "compat": "",
            "layout": "torch",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["initializer"]["config"]["scale"] == 2.0
    assert (body["fan_in"], body["fan_out"]) == (4, 10)  # torch layout: (out, in)


def test_explicit_fans_override_the_layout(client: TestClient) -> None:
    resp = client.post(
        "/v1/tensors",
        json={
            "shape": [6, 6],
            "initializer": "he_normal",
            "seed": 0,
            "fan_in": 100,
            "fan_out": 7,
            "layout": "torch",
        },
    )
    assert resp.status_code == 200
    assert (resp.json()["fan_in"], resp.json()["fan_out"]) == (100, 7)


def test_binary_headers(client: TestClient) -> None:
    resp = client.get(
        "/v1/tensors?shape=3,3,16,32&initializer=glorot_uniform&seed=7",
        headers={"Accept": "application/octet-stream", "Accept-Encoding": "identity"},
    )
    assert resp.headers["x-tensor-shape"] == "3,3,16,32"
    assert resp.headers["x-tensor-dtype"] == "float32"
    assert resp.headers["x-seed"] == "7"
    assert (resp.headers["x-fan-in"], resp.headers["x-fan-out"]) == ("144", "288")
    assert int(resp.headers["content-length"]) == 3 * 3 * 16 * 32 * 4 == len(resp.content)
    init = orjson.loads(resp.headers["x-initializer"])
    assert init["config"]["seed"] == 7
    assert " " not in resp.headers["x-initializer"]  # compact JSON


def test_npy_and_safetensors_load_with_the_reference_readers(client: TestClient) -> None:
    body = {"shape": [12, 10], "initializer": "lecun_uniform", "seed": 3}
    raw = np.frombuffer(client.post("/v1/tensors?format=binary", json=body).content, "<f4").reshape(
        12, 10
    )
    npy = client.post("/v1/tensors?format=npy", json=body)
    assert npy.headers["content-disposition"].endswith('.npy"')
    import io

    assert np.array_equal(np.load(io.BytesIO(npy.content)), raw)
    st = client.post("/v1/tensors?format=safetensors", json=body)
    loaded = safetensors.numpy.load(st.content)
    assert list(loaded) == ["weight"]
    assert np.array_equal(loaded["weight"], raw)


def test_bfloat16_safetensors_loads_in_torch(
    client: TestClient, decode: Decode, tmp_path: Path
) -> None:
    body = {"shape": [5, 3], "initializer": "he_normal", "seed": 11, "dtype": "bfloat16"}
    resp = client.post("/v1/tensors?format=safetensors", json=body)
    path = tmp_path / "w.safetensors"
    path.write_bytes(resp.content)
    with safe_open(str(path), framework="pt") as f:
        weight = f.get_tensor("weight")
        metadata = f.metadata()
    assert weight.dtype == torch.bfloat16
    assert metadata["seed"] == "11"
    raw = decode(client.post("/v1/tensors?format=binary", json=body))
    assert weight.view(torch.int16).numpy().tobytes() == raw.tobytes()


def test_seeded_get_is_immutable_and_honours_if_none_match(client: TestClient) -> None:
    url = "/v1/tensors?shape=32,32&initializer=he_normal&seed=42"
    ident = {"Accept-Encoding": "identity"}  # strong ETag (gzipped: weak, test_compression)

    def get(u: str, **headers: str) -> httpx.Response:
        return client.get(u, headers={**ident, **headers})

    first = get(url)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert get(url).headers["etag"] == etag
    cached = get(url, **{"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    weak = get(url, **{"If-None-Match": f'"nope", W/{etag}'})
    assert weak.status_code == 304
    stale = get(url, **{"If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    # The ETag depends on the encoding and on every input that changes the bytes.
    assert get(url + "&format=binary").headers["etag"] != etag
    assert get(url + "&stats=true").headers["etag"] != etag
    assert get(url.replace("42", "43")).headers["etag"] != etag
    assert get(url + "&dtype=float64").headers["etag"] != etag


def test_seed_inside_the_initializer_makes_get_cacheable(client: TestClient) -> None:
    ref = orjson.dumps({"class_name": "HeNormal", "config": {"seed": 5}}).decode()
    resp = client.get("/v1/tensors", params={"shape": "4,4", "initializer": ref})
    assert resp.json()["seed"] == 5
    assert "etag" in resp.headers


def test_unseeded_get_is_not_stored(client: TestClient) -> None:
    resp = client.get("/v1/tensors?shape=4,4&initializer=he_normal")
    assert resp.headers["cache-control"] == "no-store"
    assert "etag" not in resp.headers


def test_cors_preflight_and_exposed_headers(client: TestClient) -> None:
    pre = client.options(
        "/v1/tensors",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "accept, if-none-match",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] in ("*", "https://example.org")
    assert "GET" in pre.headers["access-control-allow-methods"]
    resp = client.get(
        "/v1/tensors?shape=2,2&seed=1&format=binary", headers={"Origin": "https://example.org"}
    )
    exposed = {h.strip().lower() for h in resp.headers["access-control-expose-headers"].split(",")}
    assert {"x-tensor-shape", "x-tensor-dtype", "x-seed", "etag"} <= exposed


def test_stats_match_the_values_and_the_reference_std(client: TestClient) -> None:
    resp = client.get("/v1/tensors?shape=512,256&initializer=he_normal&seed=3&stats=true")
    body = resp.json()
    values = np.array(body["values"], dtype=np.float32)
    stats = body["stats"]
    assert stats["mean"] == pytest.approx(float(values.astype(np.float64).mean()), abs=1e-9)
    assert stats["std"] == pytest.approx(float(values.astype(np.float64).std()), rel=1e-9)
    assert stats["min"] == float(values.min()) and stats["max"] == float(values.max())
    # He normal targets std = gain(relu) / sqrt(fan_in), as torch defines it.
    reference = torch.nn.init.calculate_gain("relu") / math.sqrt(512)
    assert stats["expected_std"] == pytest.approx(reference, rel=1e-6)
    assert stats["std"] == pytest.approx(reference, rel=0.02)
    assert "stats" not in client.get("/v1/tensors?shape=2,2&seed=3").json()


def test_threaded_and_inline_generation_give_the_same_bytes(
    client: TestClient, make_client: Callable[..., TestClient]
) -> None:
    threaded = make_client(threadpool_threshold_elements=0)
    for init in ("he_normal", "orthogonal", "truncated_normal"):
        url = f"/v1/tensors?shape=40,30&initializer={init}&seed=8&format=binary"
        assert threaded.get(url).content == client.get(url).content


def test_limits_are_configurable_and_per_format(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_elements_json=100, max_elements_binary=1000, max_orthogonal_work=5000)
    body = {"shape": [20, 10], "initializer": "he_normal", "seed": 1}
    over_json = small.post("/v1/tensors", json=body)
    assert over_json.status_code == 413
    problem = over_json.json()
    assert "100" in problem["detail"] and "binary" in problem["detail"]
    assert small.post("/v1/tensors?format=binary", json=body).status_code == 200
    assert small.post("/v1/tensors?format=npy", json={**body, "shape": [40, 30]}).status_code == 413
    # Orthogonal is capped by its O(rows·cols·min) cost, not its size.
    ortho = small.post(
        "/v1/tensors?format=binary", json={**body, "shape": [30, 30], "initializer": "orthogonal"}
    )
    assert ortho.status_code == 413
    assert "5,000" in ortho.json()["detail"]


def test_rank_limit_is_configurable(make_client: Callable[..., TestClient]) -> None:
    c = make_client(max_rank=2)
    resp = c.post("/v1/tensors", json={"shape": [2, 2, 2], "initializer": "zeros"})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["loc"] == ["body", "shape"]


def test_scalar_and_empty_tensors(client: TestClient, decode: Decode) -> None:
    scalar = client.post(
        "/v1/tensors?format=npy", json={"shape": [], "initializer": "ones", "seed": 0}
    )
    assert scalar.status_code == 200, scalar.text
    assert decode(scalar).shape == ()
    empty = client.get("/v1/tensors?shape=0,4&initializer=zeros&seed=0&format=binary")
    assert empty.status_code == 200
    assert empty.content == b"" and empty.headers["content-length"] == "0"


def test_repeated_seeded_get_is_answered_identically(
    make_client: Callable[..., TestClient],
) -> None:
    c = make_client()
    url = "/v1/tensors?shape=5,5&initializer=lecun_normal&seed=77"
    first = c.get(url, headers={"Accept-Encoding": "identity"})
    again = c.get(url, headers={"Accept-Encoding": "identity"})
    assert again.content == first.content
    assert dict(again.headers) == dict(first.headers)
    not_modified = c.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == first.headers["etag"]
    assert "content-type" not in not_modified.headers
    # Another Accept is another entry, with its own format.
    binary = c.get(url, headers={"Accept": "application/octet-stream"})
    assert binary.headers["content-type"] == "application/octet-stream"


def test_cached_answers_are_per_app(make_client: Callable[..., TestClient]) -> None:
    url = "/v1/tensors?shape=20,20&initializer=he_normal&seed=1"
    assert make_client().get(url).status_code == 200
    assert make_client(max_elements_json=100).get(url).status_code == 413


def test_openapi_documents_the_tensor_parameters(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    get = doc["paths"]["/v1/tensors"]["get"]
    names = {p["name"] for p in get["parameters"]}
    assert {"shape", "initializer", "seed", "dtype", "layout", "format", "stats"} <= names
    post = doc["paths"]["/v1/tensors"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    fields = set(schema["properties"])
    assert {"shape", "initializer", "seed", "dtype", "layout", "compat"} <= fields
    assert "application/x-npy" in get["responses"]["200"]["content"]
