"""The bad-input catalogue: every kind of invalid tensor request gets the right 4xx
problem+json naming the field and the value — never a 5xx."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient


@dataclass(frozen=True)
class Bad:
    id: str
    status: int
    loc: list[Any] | None  # expected loc prefix of the first error (None: no errors[] check)
    shows: str  # text the problem must contain (the offending value)
    json: Any = None
    content: bytes | None = None
    get: str | None = None  # query string for GET /v1/tensors instead of a POST body
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)


OK = {"shape": [4, 4], "initializer": "he_normal", "seed": 1}

CATALOGUE = [
    Bad("malformed-json", 422, ["body"], "json", content=b'{"shape": [3,'),
    Bad("body-not-an-object", 422, ["body"], "[3, 3]", json=[3, 3]),
    Bad("missing-shape", 422, ["body", "shape"], "shape", json={"initializer": "zeros"}),
    Bad("shape-wrong-type", 422, ["body", "shape"], "3x3", json={**OK, "shape": "3x3"}),
    Bad("shape-string-dims", 422, ["body", "shape", 0], "'3'", json={**OK, "shape": ["3", 3]}),
    Bad("shape-float-dims", 422, ["body", "shape", 1], "2.5", json={**OK, "shape": [3, 2.5]}),
    Bad("shape-bool-dims", 422, ["body", "shape", 0], "True", json={**OK, "shape": [True, 3]}),
    Bad("negative-dim", 422, ["body", "shape", 1], "-4", json={**OK, "shape": [3, -4]}),
    Bad(
        "huge-shape",
        413,
        ["body", "shape"],
        "1,000,000,000,000",
        json={**OK, "shape": [1_000_000, 1_000_000]},
    ),
    Bad(
        "huge-shape-binary",
        413,
        ["body", "shape"],
        "16,777,216",
        json={**OK, "shape": [1_000_000, 1_000_000]},
        query="?format=binary",
    ),
    Bad(
        "astronomical-shape",
        413,
        ["body", "shape"],
        "limit",
        json={**OK, "shape": [2**62, 2**62, 2**62]},
    ),
    Bad("rank-too-high", 422, ["body", "shape"], "rank 9", json={**OK, "shape": [1] * 9}),
    Bad(
        "unknown-scheme",
        404,
        ["body", "initializer"],
        "he_nromal",
        json={**OK, "initializer": "he_nromal"},
    ),
    Bad("initializer-wrong-type", 422, ["body", "initializer"], "5", json={**OK, "initializer": 5}),
    Bad(
        "negative-scale",
        422,
        ["body", "initializer"],
        "-1",
        json={**OK, "initializer": {"class_name": "VarianceScaling", "config": {"scale": -1}}},
    ),
    Bad(
        "bad-mode",
        422,
        ["body", "initializer"],
        "fan_sideways",
        json={
            **OK,
            "initializer": {"name": "variance_scaling", "params": {"mode": "fan_sideways"}},
        },
    ),
    Bad(
        "minval-above-maxval",
        422,
        ["body", "initializer"],
        "minval",
        json={
            **OK,
            "initializer": {"name": "random_uniform", "params": {"minval": 1.0, "maxval": -1.0}},
        },
    ),
    Bad(
        "nan-param",
        422,
        ["body", "initializer"],
        "nan",
        content=b'{"shape": [2], "seed": 1, "initializer": '
        b'{"name": "constant", "params": {"value": NaN}}}',
    ),
    Bad(
        "infinite-param",
        422,
        ["body", "initializer"],
        "inf",
        content=b'{"shape": [2], "seed": 1, "initializer": '
        b'{"name": "random_normal", "params": {"stddev": Infinity}}}',
    ),
    Bad(
        "unknown-nonlinearity",
        422,
        ["body", "initializer"],
        "swish",
        json={**OK, "initializer": {"name": "kaiming_normal", "params": {"nonlinearity": "swish"}}},
    ),
    Bad("bad-dtype", 422, ["body", "dtype"], "float8", json={**OK, "dtype": "float8"}),
    Bad("int32-on-random-scheme", 422, ["body", "dtype"], "int32", json={**OK, "dtype": "int32"}),
    Bad("bad-layout", 422, ["body", "layout"], "tf", json={**OK, "layout": "tf"}),
    Bad(
        "torch-layout-rank-1", 422, ["body"], "torch", json={**OK, "shape": [5], "layout": "torch"}
    ),
    Bad("zero-fan", 422, ["body", "fan_in"], "0", json={**OK, "fan_in": 0}),
    Bad(
        "compat-keras-on-torch-scheme",
        422,
        ["body", "compat"],
        "keras",
        json={**OK, "initializer": "xavier_normal_", "compat": "keras"},
    ),
    Bad("bad-compat", 422, ["body", "compat"], "torch", json={**OK, "compat": "torch"}),
    Bad(
        "identity-on-3d",
        422,
        ["body"],
        "identity",
        json={**OK, "shape": [3, 3, 3], "initializer": "identity"},
    ),
    Bad(
        "orthogonal-on-1d",
        422,
        ["body"],
        "orthogonal",
        json={**OK, "shape": [8], "initializer": "orthogonal"},
    ),
    Bad("seed-negative", 422, ["body", "seed"], "-1", json={**OK, "seed": -1}),
    Bad("seed-too-big", 422, ["body", "seed"], "4294967296", json={**OK, "seed": 2**32}),
    Bad("seed-string", 422, ["body", "seed"], "abc", json={**OK, "seed": "abc"}),
    Bad("unknown-field", 422, ["body", "shap"], "shap", json={**OK, "shap": [3]}),
    Bad(
        "bad-accept",
        406,
        ["header", "accept"],
        "image/png",
        json=OK,
        headers={"Accept": "image/png"},
    ),
    Bad("bad-format-post", 422, ["query", "format"], "xml", json=OK, query="?format=xml"),
    # GET query form
    Bad("get-bad-format", 422, ["query", "format"], "xml", get="shape=4,4&format=xml"),
    Bad("get-shape-not-ints", 422, ["query", "shape"], "3,x", get="shape=3,x"),
    Bad("get-negative-dim", 422, ["query", "shape"], "-3", get="shape=-3,4"),
    Bad("get-missing-shape", 422, ["query", "shape"], "shape", get="initializer=zeros"),
    Bad("get-bad-seed", 422, ["query", "seed"], "abc", get="shape=4&seed=abc"),
    Bad(
        "get-seed-out-of-range",
        422,
        ["query", "seed"],
        "99999999999",
        get="shape=4&seed=99999999999",
    ),
    Bad(
        "get-bad-json-initializer",
        422,
        ["query", "initializer"],
        "{oops",
        get="shape=4&initializer={oops",
    ),
    Bad(
        "get-unknown-scheme",
        404,
        ["query", "initializer"],
        "glorot_unifrom",
        get="shape=4,4&initializer=glorot_unifrom",
    ),
    Bad("get-bad-stats", 422, ["query", "stats"], "maybe", get="shape=4&stats=maybe"),
    Bad("get-huge", 413, ["query", "shape"], "1,000,000,000,000", get="shape=1000000,1000000"),
    Bad("get-bad-dtype", 422, ["query", "dtype"], "complex64", get="shape=4&dtype=complex64"),
    # GET names: only those the operation documents, each once (POST refuses unknown fields)
    Bad(
        "get-initializer-param-in-query",
        422,
        ["query", "stddev"],
        "unknown query parameter",
        get="shape=2,2&initializer=random_normal&stddev=5",
    ),
    Bad("get-misspelt-seed", 422, ["query", "sed"], "did you mean seed?", get="shape=2&sed=42"),
    Bad(
        "get-repeated-shape",
        422,
        ["query", "shape"],
        "more than once",
        get="shape=2,2&shape=3,3",
    ),
    Bad("get-empty-format", 422, ["query", "format"], "must be one of", get="shape=2&format="),
    Bad("post-empty-format", 422, ["query", "format"], "must be one of", json=OK, query="?format="),
    Bad(
        "post-field-in-query",
        422,
        ["query", "seed"],
        "format, stats, compress",
        json=OK,
        query="?seed=5",
    ),
    Bad(
        "get-bad-accept",
        406,
        ["header", "accept"],
        "text/csv",
        get="shape=4",
        headers={"Accept": "text/csv"},
    ),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input_gives_a_problem_naming_field_and_value(client: TestClient, case: Bad) -> None:
    if case.get is not None:
        resp = client.get(f"/v1/tensors?{case.get}", headers=case.headers)
    elif case.content is not None:
        resp = client.post(
            "/v1/tensors" + case.query,
            content=case.content,
            headers={"Content-Type": "application/json", **case.headers},
        )
    else:
        resp = client.post("/v1/tensors" + case.query, json=case.json, headers=case.headers)
    assert resp.status_code == case.status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == case.status
    assert problem["title"] and problem["detail"]
    if case.loc is not None:
        assert problem.get("errors"), problem
        loc = problem["errors"][0]["loc"]
        assert loc[: len(case.loc)] == case.loc, problem
    assert case.shows.lower() in resp.text.lower(), problem


def test_unknown_scheme_suggests_the_closest_names(client: TestClient) -> None:
    resp = client.post("/v1/tensors", json={**OK, "initializer": "he_nromal"})
    assert "he_normal" in resp.json()["detail"]


def test_a_huge_request_never_reaches_the_engine(client: TestClient) -> None:
    # 10^12 float64 elements would be 8 TB: refused by arithmetic, before any allocation.
    resp = client.get("/v1/tensors?shape=1000000,1000000&dtype=float64&format=npy")
    assert resp.status_code == 413
    assert "16,777,216" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("initializer", "inner_loc"),
    [
        ({"class_name": "HeNormal", "config": {"seed": 7}}, ["initializer", "config", "seed"]),
        ({"className": "RandomNormal", "config": {"seed": 7}}, ["initializer", "config", "seed"]),
        ({"name": "he_normal", "params": {"seed": 7}}, ["initializer", "params", "seed"]),
        ({"name": "he_normal", "seed": 7}, ["initializer", "seed"]),
    ],
)
def test_two_different_seeds_are_a_422_naming_both(
    client: TestClient, initializer: dict[str, Any], inner_loc: list[str]
) -> None:
    resp = client.post("/v1/tensors", json={"shape": [2], "initializer": initializer, "seed": 8})
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert [(e["loc"], e["input"]) for e in errors] == [
        (["body", "seed"], 8),
        (["body", *inner_loc], 7),
    ]
    assert ".".join(["body", *inner_loc]) + " = 7" in resp.json()["detail"]
    query = {"shape": "2", "seed": "8", "initializer": json.dumps(initializer)}
    get = client.get("/v1/tensors", params=query)
    assert get.status_code == 422
    assert [e["loc"] for e in get.json()["errors"]] == [["query", "seed"], ["query", *inner_loc]]


def test_one_seed_anywhere_or_the_same_seed_twice_is_used(client: TestClient) -> None:
    inner = {"class_name": "HeNormal", "config": {"seed": 7}}
    top = client.post("/v1/tensors", json={"shape": [4], "initializer": "he_normal", "seed": 7})
    for body in (
        {"shape": [4], "initializer": inner},
        {"shape": [4], "initializer": inner, "seed": 7},
    ):
        resp = client.post("/v1/tensors", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["seed"] == 7 and resp.json()["values"] == top.json()["values"]


def test_names_added_to_a_url_outside_its_clients_control_are_skipped(client: TestClient) -> None:
    plain = client.get("/v1/tensors?shape=3,2&seed=4&format=binary")
    added = "_=1712345678&utm_source=mail&fbclid=x1&_=again&gclid=y"
    resp = client.get(f"/v1/tensors?shape=3,2&{added}&seed=4&format=binary")
    assert resp.status_code == 200 and resp.content == plain.content
    assert resp.headers["etag"] == plain.headers["etag"]
    assert client.get("/v1/tensors?shape=3,2&utmsource=mail").status_code == 422
