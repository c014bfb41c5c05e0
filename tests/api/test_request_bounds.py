"""Bounds at the HTTP boundary: integers beyond 64 bits, non-ASCII digits, deep nesting,
oversized bodies and non-JSON media types are clean 4xx problem+json, never a 500."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"
HUGE = 10**30
JOB: dict[str, Any] = {
    "dataset": {"name": "circles", "train_size": 100},
    "model": {"hidden_layers": [4]},
    "training": {"epochs": 1},
    "schemes": [{"initializer": "he_normal"}],
}


def problem(res: Any, status: int) -> dict[str, Any]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = res.json()
    assert body["status"] == status
    return body


def first_loc(body: dict[str, Any]) -> list[Any]:
    loc: list[Any] = body["errors"][0]["loc"]
    return loc


def with_value(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(JOB)
    keys = path.split(".")
    node: Any = spec
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
        return spec
    node[keys[-1]] = value
    return spec


# ------------------------------------------------------------------------- GET /v1/tensors


@pytest.mark.parametrize("name", ["fan_in", "fan_out", "seed"])
@pytest.mark.parametrize("value", ["99999999999999999999999", str(2**64), "9" * 5000])
def test_query_integers_beyond_64_bits_are_422(client: TestClient, name: str, value: str) -> None:
    res = client.get(f"/v1/tensors?shape=3,3&seed=1&initializer=he_normal&{name}={value}")
    body = problem(res, 422)
    assert first_loc(body) == ["query", name]


@pytest.mark.parametrize(
    "value",
    ["1_000", "\u0661\u0662", "+5", "0x10", "1e3", "\uff13", "12\u00b2"],
    ids=["underscore", "arabic-indic", "plus", "hex", "exponent", "fullwidth", "superscript"],
)
def test_query_integers_are_plain_ascii_decimal(client: TestClient, value: str) -> None:
    for query in (f"shape=3,3&fan_in={value}", f"shape=3,{value}", f"shape=3&seed={value}"):
        body = problem(
            client.get("/v1/tensors", params=dict(p.split("=") for p in query.split("&"))), 422
        )
        assert first_loc(body)[0] == "query"
        assert value in body["errors"][0]["input"]


def test_query_dimension_beyond_64_bits_is_422(client: TestClient) -> None:
    body = problem(client.get(f"/v1/tensors?shape=0,{HUGE}&seed=1"), 422)
    assert first_loc(body)[:2] == ["query", "shape"]


def test_empty_tensor_with_huge_fans_is_422_not_500(client: TestClient) -> None:
    # Zero elements, so no element limit applies; the fans would not fit in 64 bits.
    res = client.get(f"/v1/tensors?shape={2**40},{2**40},5,0&seed=1&initializer=he_normal")
    body = problem(res, 422)
    assert first_loc(body) == ["query", "shape"]


@pytest.mark.parametrize("shape", [[2**62, 0], [2**31, 2**31, 0], [0, 2**40, 2**40, 3]])
@pytest.mark.parametrize("fmt", ["json", "npy"])
def test_empty_tensor_numpy_cannot_describe_is_422(
    client: TestClient, shape: list[int], fmt: str
) -> None:
    query = ",".join(map(str, shape))
    res = client.get(f"/v1/tensors?shape={query}&seed=1&initializer=zeros&format={fmt}")
    body = problem(res, 422)
    assert first_loc(body) == ["query", "shape"] and "2**59" in body["detail"]


def test_empty_tensor_with_large_dimensions_is_served(client: TestClient) -> None:
    res = client.get(f"/v1/tensors?shape={2**20},{2**20},0&seed=1&initializer=zeros&format=npy")
    assert res.status_code == 200, res.text
    assert res.headers["x-tensor-shape"] == f"{2**20},{2**20},0"


def test_deeply_nested_query_initializer_is_422(client: TestClient) -> None:
    deep = '{"a":' * 1000 + "1" + "}" * 1000
    body = problem(client.get("/v1/tensors", params={"shape": "3", "initializer": deep}), 422)
    assert first_loc(body) == ["query", "initializer"]
    assert "nested deeper" in body["detail"]


# ------------------------------------------------------------------------ POST /v1/tensors


@pytest.mark.parametrize("field", ["fan_in", "fan_out", "seed"])
def test_body_integers_beyond_range_are_422(client: TestClient, field: str) -> None:
    res = client.post("/v1/tensors", json={"shape": [3, 3], "seed": 1, field: HUGE})
    body = problem(res, 422)
    assert first_loc(body) == ["body", field]
    assert str(HUGE) in res.text


def test_initializer_with_a_huge_integer_is_422(client: TestClient) -> None:
    ref = {"class_name": "RandomUniform", "config": {"minval": 0, "maxval": 2**70}}
    body = problem(client.post("/v1/tensors", json={"shape": [3], "initializer": ref}), 422)
    assert first_loc(body)[:2] == ["body", "initializer"]


def test_deeply_nested_initializer_body_is_422(client: TestClient) -> None:
    raw = b'{"shape":[3],"initializer":' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}"
    res = client.post("/v1/tensors", content=raw, headers={"content-type": "application/json"})
    assert "nested deeper than 32" in problem(res, 422)["detail"]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_post_tensors_non_json_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    res = client.post("/v1/tensors", content=b'{"shape": [3]}', headers=headers)
    body = problem(res, 415)
    assert first_loc(body) == ["header", "content-type"]


def test_a_non_ascii_content_type_reads_as_utf8_in_detail_and_input(client: TestClient) -> None:
    res = client.post("/v1/tensors", content=b"{}", headers={"content-type": "text/é".encode()})
    body = problem(res, 415)
    assert "'text/é'" in body["detail"] and body["errors"][0]["input"] == "text/é"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/vnd.api+json"],
)
def test_post_tensors_accepts_json_media_types(client: TestClient, content_type: str) -> None:
    res = client.post(
        "/v1/tensors", content=b'{"shape": [3], "seed": 1}', headers={"content-type": content_type}
    )
    assert res.status_code == 200, res.text
    assert len(res.json()["values"]) == 3


# --------------------------------------------------------------------------- body size


def test_json_body_over_the_limit_is_413_naming_it(
    make_client: Callable[..., TestClient],
) -> None:
    small = make_client(max_body_bytes=4096)
    raw = b'{"shape": [3], "pad": "' + b"x" * 8192 + b'"}'
    for path in ("/v1/tensors", "/v1/jobs"):
        res = small.post(path, content=raw, headers={"content-type": "application/json"})
        body = problem(res, 413)
        assert "4096 bytes" in body["detail"] and "INITLAB_MAX_BODY_BYTES" in body["detail"]
        assert first_loc(body) == ["body"]


def test_streamed_body_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_body_bytes=4096)

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        yield b'{"shape": [3], "pad": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    res = small.post("/v1/tensors", content=chunks(), headers={"content-type": "application/json"})
    body = problem(res, 413)
    assert "4096 bytes" in body["detail"]


def test_body_under_the_limit_still_works(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_body_bytes=4096)
    res = small.post("/v1/tensors", json={"shape": [2], "seed": 3})
    assert res.status_code == 200, res.text


def test_uploads_keep_their_own_limit(make_client: Callable[..., TestClient]) -> None:
    # Over the JSON body limit but under max_upload_bytes: the upload route reads it (and
    # refuses it only as not an .npz, 422), instead of the body limit's 413.
    c = make_client(max_body_bytes=4096, max_upload_bytes=65536)
    raw = b"\0" * 20000
    res = c.post("/v1/datasets", content=raw, headers={"content-type": "application/octet-stream"})
    assert problem(res, 422)["detail"].startswith("body: not an .npz")
    over = c.post(
        "/v1/datasets", content=b"\0" * 70000, headers={"content-type": "application/octet-stream"}
    )
    assert "INITLAB_MAX_UPLOAD_BYTES" in problem(over, 413)["detail"]


# --------------------------------------------------------------------------- POST /v1/jobs


@pytest.mark.parametrize(
    "path",
    [
        "repeats",
        "seed",
        "training.batch_size",
        "training.epochs",
        "training.steps",
        "dataset.seed",
        "record.eval_every",
        "record.plot_n_batches",
        "record.max_batch_points",
        "model.hidden_layers.0",
    ],
)
def test_job_integers_beyond_range_are_422_naming_the_field(
    client: TestClient, redis_url: str, path: str
) -> None:
    spec = with_value(path, HUGE)
    if path == "training.steps":
        del spec["training"]["epochs"]
    body = problem(client.post("/v1/jobs", json=spec), 422)
    loc = ".".join(str(p) for p in first_loc(body))
    assert loc == path
    assert str(HUGE) in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "schemes.0.initializer",
        "model.activation",
        "model.kernel_initializer",
        "schemes.0.bias_initializer",
    ],
)
def test_job_free_form_values_with_huge_integers_are_422(
    client: TestClient, redis_url: str, path: str
) -> None:
    value: Any = {"name": "constant", "params": {"value": 2**63}}
    if path == "model.activation":
        value = {"name": "leaky_relu", "negative_slope": 2**63}
    body = problem(client.post("/v1/jobs", json=with_value(path, value)), 422)
    assert ".".join(str(p) for p in first_loc(body)) == path
    assert "64-bit range" in body["detail"]


def test_job_dataset_parameter_beyond_64_bits_is_422(client: TestClient, redis_url: str) -> None:
    body = problem(client.post("/v1/jobs", json=with_value("dataset.noise", 2**64)), 422)
    assert first_loc(body) == ["dataset", "noise"]


def test_deeply_nested_job_body_is_422(client: TestClient, redis_url: str) -> None:
    for depth, says in ((150, "nested deeper than 64"), (5000, "recursion limit exceeded")):
        deep = '{"a":' * depth + "1" + "}" * depth
        raw = orjson.dumps(with_value("schemes.0.initializer", "DEEP")).replace(
            b'"DEEP"', deep.encode()
        )
        res = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
        body = problem(res, 422)
        assert first_loc(body) == ["body"] and says in body["detail"]
    assert body["errors"][0]["input"] == f"<{len(raw)} bytes>"
    moderate: Any = 1
    for _ in range(40):
        moderate = [moderate]
    body = problem(client.post("/v1/jobs", json=with_value("dataset.x", moderate)), 422)
    assert "nested deeper than 32" in body["detail"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data; boundary=x"])
def test_post_jobs_non_json_is_415(
    client: TestClient, redis_url: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    res = client.post("/v1/jobs", content=b'{"preset": "dlai-circles"}', headers=headers)
    assert first_loc(problem(res, 415)) == ["header", "content-type"]


def test_post_jobs_malformed_json_is_422(client: TestClient, redis_url: str) -> None:
    res = client.post(
        "/v1/jobs", content=b'{"preset": ', headers={"content-type": "application/json"}
    )
    body = problem(res, 422)
    assert first_loc(body) == ["body"] and "invalid JSON" in body["detail"]


def test_upload_of_another_media_type_is_415_naming_the_header(client: TestClient) -> None:
    res = client.post("/v1/datasets", content=b"x" * 10, headers={"content-type": "text/plain"})
    error = problem(res, 415)["errors"][0]
    assert error["loc"] == ["header", "content-type"] and error["input"] == "text/plain"


# ------------------------------------------------------------- request line, headers, methods


def test_query_string_over_the_bound_is_414(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_query_bytes=1024)
    padded = "/v1/tensors?shape=3&seed=1&initializer=" + "+" * 900 + "he_normal"  # spaces
    assert small.get(padded).status_code == 200
    body = problem(small.get("/v1/tensors?shape=3&x=" + "a" * 2000), 414)
    assert first_loc(body) == ["query"] and "INITLAB_MAX_QUERY_BYTES" in body["detail"]
    assert "1024" in body["detail"]


def test_headers_over_the_bound_are_431(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_header_bytes=4096)
    assert small.get("/healthz", headers={"x-pad": "a" * 3000}).status_code == 200
    body = problem(small.get("/healthz", headers={"x-pad": "a" * 5000}), 431)
    assert first_loc(body) == ["header"] and "INITLAB_MAX_HEADER_BYTES" in body["detail"]


@pytest.mark.integration
def test_a_long_query_is_problem_json_through_uvicorn(api_server: str) -> None:
    # 40 KiB: over our 32 KiB bound, under what uvicorn's parser refuses as text/plain.
    res = httpx.get(f"{api_server}/v1/tensors?shape=3&x=" + "a" * 40_000, timeout=10)
    assert first_loc(problem(res, 414)) == ["query"]
    res = httpx.get(f"{api_server}/healthz", headers={"x-pad": "a" * 100_000}, timeout=10)
    assert first_loc(problem(res, 431)) == ["header"]


def _raw_get(base: str, target: str) -> tuple[int, str]:
    """(status, content-type) of a GET of ``target`` sent on a raw socket (httpx refuses
    URLs of 64 KiB and more itself)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower().split("\r\n")
    types = [line.split(":", 1)[1].strip() for line in head if line.startswith("content-type:")]
    return int(head[0].split()[1]), types[0] if types else ""


@pytest.mark.integration
def test_uvicorns_own_400_starts_at_a_request_target_of_65536_bytes(api_server: str) -> None:
    """Where docs/api.md says uvicorn (httptools: http-parser's 16-bit URL offsets) takes over:
    a 65,535-byte target is still ours to answer (414), one byte more is its text/plain 400."""
    prefix = "/v1/tensors?shape=3&x="
    status, ctype = _raw_get(api_server, prefix + "a" * (65_535 - len(prefix)))
    assert (status, ctype) == (414, PROBLEM)
    status, ctype = _raw_get(api_server, prefix + "a" * (65_536 - len(prefix)))
    assert status == 400 and ctype.startswith("text/plain")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/jobs", "GET, HEAD, POST"),
        ("PATCH", "/v1/jobs/job_1", "DELETE, GET, HEAD"),
        ("DELETE", "/v1/tensors", "GET, HEAD, POST"),
        ("POST", "/v1/datasets/ds_1", "DELETE, GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    res = client.request(method, path)
    body = problem(res, 405)
    assert res.headers["allow"] == allow
    assert body["errors"][0] == {"loc": ["method"], "msg": f"one of {allow}", "input": method}


def _preflight(client: TestClient, path: str, method: str) -> Any:
    headers = {"origin": "https://app.example", "access-control-request-method": method}
    return client.options(path, headers=headers)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/jobs", "GET, HEAD, POST"),
        ("/v1/jobs/job_1", "DELETE, GET, HEAD"),
        ("/v1/tensors", "GET, HEAD, POST"),
        ("/v1/initializers/he_normal", "GET, HEAD"),
        ("/healthz", "GET, HEAD"),
    ],
)
def test_cors_preflight_advertises_the_methods_of_its_path(
    client: TestClient, path: str, allow: str
) -> None:
    # The same list as a 405's Allow on that path; any other method's preflight is refused.
    assert client.request("PUT", path).headers["allow"] == allow
    for method in allow.split(", "):
        res = _preflight(client, path, method)
        assert res.status_code == 200, (method, res.text)
        assert res.headers["access-control-allow-methods"] == allow
    for method in {"DELETE", "POST", "PUT", "PATCH"} - set(allow.split(", ")):
        res = _preflight(client, path, method)
        assert res.status_code == 400 and "method" in res.text, method
        assert res.headers["access-control-allow-methods"] == allow


def test_a_path_no_route_serves_passes_its_preflight_and_gets_a_readable_404(
    client: TestClient,
) -> None:
    # A cross-origin page then reads the 404 problem, not an opaque CORS failure.
    for method in ("GET", "DELETE"):
        res = _preflight(client, "/v1/nothing-here", method)
        assert res.status_code == 200, (method, res.text)
    res = client.get("/v1/nothing-here", headers={"Origin": "http://elsewhere.example"})
    problem(res, 404)
    assert res.headers["access-control-allow-origin"] in ("*", "http://elsewhere.example")


@pytest.mark.parametrize("name", ["%20", "%1F"])
def test_a_blank_initializer_name_is_404_not_500(client: TestClient, name: str) -> None:
    assert "No initializer" in problem(client.get(f"/v1/initializers/{name}"), 404)["detail"]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON: recursion limit exceeded"),
        (b'{"input_shape": [4], "layers": [], "x": "\xff"}', "invalid JSON: not UTF-8 (byte 41"),
    ],
)
def test_a_body_fastapi_cannot_parse_is_422_naming_it(
    client: TestClient, raw: bytes, says: str
) -> None:
    """/v1/models reads its body through FastAPI: past Python's recursion limit (or not UTF-8)
    its parse fails with a bare 400, which the app turns into the malformed body's 422."""
    res = client.post("/v1/models", content=raw, headers={"content-type": "application/json"})
    body = problem(res, 422)
    assert body["type"].endswith("/invalid-input")
    assert first_loc(body) == ["body"] and says in body["detail"]
    assert body["errors"][0]["input"] == f"<{len(raw)} bytes>"
