"""Fuzzing the HTTP API: no input makes it answer 5xx, and every 4xx is problem+json.

Two bounded, derandomized (same cases on every run) fuzzers, in-process on the real app and
the session's real Redis:

- schemathesis drives every operation of the app's own ``/openapi.json`` with every check it
  has (server errors, documented statuses, content types, headers and response schemas,
  schema-valid data accepted and schema-violating data refused, ignored auth, ...): values in
  and out of their declared types and ranges, missing and extra parameters;
- hypothesis mutates known-good tensor and job bodies where the OpenAPI document cannot say
  much (initializer references and dataset parameters are free-form JSON there): a field
  replaced by a huge or negative integer, a float such as 1e308, a deeply nested value, a
  string of non-ASCII digits, ...

The app under fuzz has small tensor limits, so a generated shape stays cheap to serve.
Accepted jobs are cancelled at once: their queued tasks are skipped by any later worker.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    not_a_server_error,
    positive_data_acceptance,
)
from schemathesis.config import SchemathesisConfig

from app.config import Settings
from app.main import create_app

PROBLEM = "application/problem+json"
# Operations fuzzed from the OpenAPI document (method, path): every one the app has.
OPERATIONS = [
    (method.upper(), path)
    for path, item in create_app(Settings()).openapi()["paths"].items()
    for method in item
]
# Schemathesis checks that fail today on routes outside the API edges, each for a reason
# listed in the integration notes; delete an entry once its route is fixed.
KNOWN: dict[tuple[str, str], list[Any]] = {
    # cursor: any string up to 200 characters in the schema, only this API's cursors accepted
    ("GET", "/v1/jobs"): [positive_data_acceptance],
    # dtype, shape and the initializer's parameters constrain each other (int32 only for the
    # constant schemes, orthogonal rank >= 2...): no JSON Schema of the query says so
    ("GET", "/v1/tensors"): [positive_data_acceptance],
    # Last-Event-ID / after: any string in the schema, an event id accepted
    ("GET", "/v1/jobs/{job_id}/events"): [positive_data_acceptance],
    # the file: any bytes in the schema (binary), an .npz of x_train/y_train accepted; the
    # name's pattern is in the schema
    ("POST", "/v1/datasets"): [positive_data_acceptance],
    # the body: any object in the schema (a layer list whose shapes must fit each other)
    ("POST", "/v1/models"): [positive_data_acceptance],
    # the body is a JobCreate in the schema, but the dataset's name and parameters, the
    # initializer references and the cross-field rules (epochs or steps, a kernel initializer
    # for every layer, unique labels) are checked beyond it; and an Idempotency-Key fuzzed
    # twice with two bodies is a 422 by design
    ("POST", "/v1/jobs"): [positive_data_acceptance],
    # shape items 2.0 (an integer in JSON Schema) refused
    ("POST", "/v1/tensors"): [positive_data_acceptance],
}
# A request within the schema may be over a configured limit (413; the fuzzed app has small
# ones). DELETE /v1/jobs/{id} cancels: the job stays readable (api.md), so no use-after-free.
SCHEMATHESIS_CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429"]
"""
FUZZ = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz_settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        max_elements_json=4096,
        max_elements_binary=65536,
        max_orthogonal_work=2**20,
        max_upload_bytes=64 * 1024,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture(scope="module")
def fuzz_app(redis_url: str) -> FastAPI:
    return create_app(fuzz_settings(redis_url))


@pytest.fixture(scope="module")
def fuzz_client(fuzz_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(fuzz_app, raise_server_exceptions=False) as c:
        yield c


def assert_clean(status: int, content_type: str | None, content: bytes, what: str) -> None:
    """No 5xx; a 4xx is problem+json with its status, a title and a detail."""
    assert status < 500, f"{what} -> {status}: {content[:500]!r}"
    if 400 <= status < 500:
        assert (content_type or "").startswith(PROBLEM), f"{what} -> {status} {content_type}"
        problem = json.loads(content)
        assert problem["status"] == status and problem["title"] and problem["detail"], problem


def cancel_if_accepted(client: TestClient, status: int, body: Any) -> None:
    if status == 202 and isinstance(body, dict) and "id" in body:
        client.delete(f"/v1/jobs/{body['id']}")


# ------------------------------------------------------------------- schemathesis (OpenAPI)


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> Any:
    config = SchemathesisConfig.from_str(SCHEMATHESIS_CONFIG)
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=config)


# schemathesis' own pytest integration (``from_fixture``) does not run on pytest 9: each
# operation's strategy is driven by hypothesis directly instead.
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_openapi_fuzz_no_server_error(
    api_schema: Any, fuzz_client: TestClient, method: str, path: str
) -> None:
    operation = api_schema[path][method]

    @FUZZ
    @given(case=operation.as_strategy())
    def fuzz(case: Any) -> None:
        response = case.call()
        if path == "/readyz" and response.status_code == 503:
            # No worker runs beside this app: the right answer, which names the reason.
            assert "no Celery worker" in response.json()["detail"]
            assert response.headers["retry-after"]
            return
        case.validate_response(response, checks=[not_a_server_error])
        # Every other check schemathesis has, but the known failures of this operation.
        case.validate_response(response, excluded_checks=KNOWN.get((method, path), []))
        content_type = (response.headers.get("content-type") or [""])[0]
        assert_clean(
            response.status_code,
            content_type,
            response.content,
            f"{case.method} {case.formatted_path} query={case.query} headers={case.headers} "
            f"body={case.body!r:.300}",
        )
        if content_type.startswith("application/json"):
            cancel_if_accepted(fuzz_client, response.status_code, response.json())

    fuzz()


# ------------------------------------------------------------------ hypothesis (free-form JSON)


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# Values tried at every path (exhaustively), then hypothesis draws more from VALUES.
NASTY: list[Any] = [
    *(2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1, -1, 0),
    *(1e308, -1e308, 5e-324, 0.5, True, None),
    *("", "\u0661\u0662", "1_000", "\x00", "x" * 3000),
    *([], {}, [2**64], [2**62, 0], [0, 2**40, 2**40], {"name": 10**30}),
]
NASTY += [_nested(40), _nested(600)]  # over the free-form limit; over the body parser's
VALUES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.integers(min_value=1, max_value=190).map(lambda n: _nested(n)),
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=4),
    st.dictionaries(
        st.text(max_size=6), st.integers(min_value=-(2**70), max_value=2**70), max_size=3
    ),
)
MUTATIONS = settings(FUZZ, max_examples=12)


TENSOR: dict[str, Any] = {
    "shape": [4, 3],
    "initializer": {"class_name": "VarianceScaling", "config": {"scale": 2.0, "seed": 1}},
    "seed": 1,
    "dtype": "float32",
    "layout": "keras",
    "fan_in": 4,
    "fan_out": 3,
}
TENSOR_PATHS = [
    ("shape",),
    ("shape", 0),
    ("shape", 1),
    ("initializer",),
    ("initializer", "class_name"),
    ("initializer", "config"),
    ("initializer", "config", "scale"),
    ("initializer", "config", "seed"),
    ("initializer", "config", "mode"),
    ("initializer", "config", "distribution"),
    ("seed",),
    ("dtype",),
    ("layout",),
    ("fan_in",),
    ("fan_out",),
    ("compat",),
]
JOB: dict[str, Any] = {
    "dataset": {"name": "circles", "train_size": 64, "validation_size": 32, "seed": 1},
    "model": {
        "hidden_layers": [4],
        "activation": "relu",
        "layers": [{"layer": 0, "kernel_initializer": "he_normal"}],
    },
    "training": {
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
        "batch_size": 16,
        "epochs": 1,
    },
    "schemes": [
        {"label": "he", "initializer": "he_normal"},
        {"initializer": {"name": "random_uniform", "params": {"minval": -1, "maxval": 1}}},
    ],
    "repeats": 1,
    "seed": 3,
    "record": {"plot_n_batches": 10, "max_batch_points": 20, "eval_every": 1},
}
JOB_PATHS = [
    ("dataset",),
    ("dataset", "name"),
    ("dataset", "train_size"),
    ("dataset", "seed"),
    ("dataset", "noise"),
    ("model", "hidden_layers"),
    ("model", "hidden_layers", 0),
    ("model", "activation"),
    ("model", "dropout"),
    ("model", "output_units"),
    ("model", "layers", 0, "layer"),
    ("model", "layers", 0, "kernel_initializer"),
    ("training", "optimizer", "name"),
    ("training", "optimizer", "learning_rate"),
    ("training", "optimizer", "betas"),
    ("training", "batch_size"),
    ("training", "epochs"),
    ("training", "steps"),
    ("schemes",),
    ("schemes", 0, "label"),
    ("schemes", 0, "initializer"),
    ("schemes", 1, "initializer", "params", "maxval"),
    ("schemes", 1, "bias_initializer"),
    ("repeats",),
    ("seed",),
    ("record", "plot_n_batches"),
    ("record", "max_batch_points"),
    ("record", "eval_every"),
    ("preset",),
]


def mutate(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def post_json(client: TestClient, url: str, doc: Any) -> Any:
    # Python's encoder writes integers beyond 64 bits exactly (orjson refuses them).
    raw = json.dumps(doc).encode()
    return client.post(url, content=raw, headers={"content-type": "application/json"})


def post_tensor(client: TestClient, path: tuple[Any, ...], value: Any) -> None:
    doc = mutate(TENSOR, path, value)
    for query in ("", "?format=npy"):
        res = post_json(client, f"/v1/tensors{query}", doc)
        what = f"POST {query} {path}={value!r:.200}"
        assert_clean(res.status_code, res.headers.get("content-type"), res.content, what)


def get_tensor(client: TestClient, path: tuple[Any, ...], value: Any) -> None:
    # The same mutations through GET: scalars as query values, objects as JSON text.
    doc = mutate(TENSOR, path, value)
    params: dict[str, str] = {}
    for key, item in doc.items():
        if key == "shape" and isinstance(item, list):
            params[key] = ",".join(str(d) for d in item)
        elif isinstance(item, dict | list):
            params[key] = json.dumps(item)
        else:
            params[key] = str(item)
    res = client.get("/v1/tensors", params=params)
    assert_clean(res.status_code, res.headers.get("content-type"), res.content, f"GET {params}")


def post_job(client: TestClient, path: tuple[Any, ...], value: Any) -> None:
    res = post_json(client, "/v1/jobs", mutate(JOB, path, value))
    what = f"POST /v1/jobs {path}={value!r:.200}"
    assert_clean(res.status_code, res.headers.get("content-type"), res.content, what)
    cancel_if_accepted(client, res.status_code, res.json())


@pytest.mark.parametrize("path", TENSOR_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_tensor_mutations(fuzz_client: TestClient, path: tuple[Any, ...]) -> None:
    for value in NASTY:
        post_tensor(fuzz_client, path, value)
        get_tensor(fuzz_client, path, value)

    @MUTATIONS
    @given(value=VALUES)
    def more(value: Any) -> None:
        post_tensor(fuzz_client, path, value)
        get_tensor(fuzz_client, path, value)

    more()


@pytest.mark.parametrize("path", JOB_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_job_mutations(fuzz_client: TestClient, path: tuple[Any, ...]) -> None:
    for value in NASTY:
        post_job(fuzz_client, path, value)

    @MUTATIONS
    @given(value=VALUES)
    def more(value: Any) -> None:
        post_job(fuzz_client, path, value)

    more()


def test_the_job_base_is_accepted(fuzz_client: TestClient) -> None:
    # The mutations start from a valid spec (else they would only probe the first check).
    res = post_json(fuzz_client, "/v1/jobs", JOB)
    assert res.status_code == 202, res.text
    cancel_if_accepted(fuzz_client, res.status_code, res.json())
    ok = post_json(fuzz_client, "/v1/tensors", TENSOR)
    assert ok.status_code == 200, ok.text
