"""``/v1/initializers``: the catalog lists every scheme, and every alias resolves."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app import initializers as engine

# Every scheme issue 2 names, in one spelling each; the catalog must know all of them.
SCHEMES = [
    "zeros",
    "ones",
    "constant",
    "random_uniform",
    "random_normal",
    "truncated_normal",
    "variance_scaling",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "identity",
    "delta_orthogonal",
    "dirac_",
    "sparse_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "trunc_normal_",
    "eye_",
    "torch_default",
    "general_rule",
    "small_random",
]
# Spellings from each framework that must resolve to the scheme on the right.
SPELLINGS = {
    "GlorotUniform": "glorot_uniform",
    "glorotUniform": "glorot_uniform",
    "leCunNormal": "lecun_normal",
    "LecunNormal": "lecun_normal",
    "heNormal": "he_normal",
    "VarianceScaling": "variance_scaling",
    "varianceScaling": "variance_scaling",
    "RandomNormal": "random_normal",
    "TruncatedNormal": "truncated_normal",
}


@pytest.fixture(scope="module")
def catalog(client: TestClient) -> list[dict]:
    resp = client.get("/v1/initializers")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    entries = resp.json()["initializers"]
    assert isinstance(entries, list)
    return entries


def test_entries_document_each_scheme(catalog: list[dict]) -> None:
    names = [e["name"] for e in catalog]
    assert len(names) == len(set(names))
    for entry in catalog:
        assert entry["name"] == entry["name"].lower()
        assert entry["aliases"], entry["name"]
        for key in ("family", "formula", "description"):
            assert isinstance(entry[key], str) and entry[key], (entry["name"], key)
        assert isinstance(entry["references"], list)
        assert set(entry["frameworks"]) >= {"keras", "tfjs", "pytorch", "jax"}
        for pname, param in entry["params"].items():
            assert "type" in param and "description" in param, (entry["name"], pname)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_catalog_lists_every_scheme(client: TestClient, catalog: list[dict], scheme: str) -> None:
    resp = client.get(f"/v1/initializers/{scheme}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] in {e["name"] for e in catalog}


def test_every_alias_resolves_to_its_entry(client: TestClient, catalog: list[dict]) -> None:
    checked = 0
    for entry in catalog:
        for alias in entry["aliases"]:
            resp = client.get(f"/v1/initializers/{quote(alias, safe='')}")
            assert resp.status_code == 200, (alias, resp.text)
            assert resp.json()["name"] == entry["name"], alias
            checked += 1
    assert checked >= len(catalog)


@pytest.mark.parametrize(("spelling", "name"), SPELLINGS.items())
def test_framework_spellings(client: TestClient, spelling: str, name: str) -> None:
    assert client.get(f"/v1/initializers/{spelling}").json()["name"] == name


def test_entry_equals_its_catalog_row(client: TestClient, catalog: list[dict]) -> None:
    row = next(e for e in catalog if e["name"] == "he_normal")
    assert client.get("/v1/initializers/he_normal").json() == row


def test_unknown_name_is_a_404_with_suggestions(client: TestClient) -> None:
    resp = client.get("/v1/initializers/glorot_unifrom")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert "glorot_unifrom" in problem["detail"]
    assert "glorot_uniform" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["path", "name"]


def test_param_types_use_one_json_schema_vocabulary(catalog: list[dict]) -> None:
    types = {p["type"] for entry in catalog for p in entry["params"].values()}
    assert types <= {"number", "integer", "string", "boolean", "array"}
    assert {"number", "integer", "string", "boolean", "array"} <= types


@pytest.mark.parametrize(
    ("ref", "fields", "reason"),
    [
        ("kaiming_normal", {"shape": [4, 4]}, "no kaiming_normal"),
        ("dirac", {"shape": [4, 4, 3]}, "no dirac"),
        (
            {"name": "variance_scaling", "params": {"distribution": "untruncated_normal"}},
            {"shape": [4, 4]},
            "untruncated",
        ),
        (
            {"name": "random_uniform", "params": {"minval": 0.0, "maxval": 1.0}},
            {"shape": [4, 4]},
            "0.05",
        ),
        (
            {"name": "jax.nn.initializers.he_normal", "params": {"in_axis": 0}},
            {"shape": [4, 4]},
            "axes",
        ),
        (
            {"name": "truncated_normal", "params": {"stddev": 0}},
            {"shape": [4, 4]},
            "stddev 0 with 0.05",
        ),
        # Shape-dependent: TF.js's Identity is square-only, its fans at rank 1 and > 5 are
        # sqrt(prod(shape)), and it knows no layout or explicit fans.
        ({"name": "identity", "params": {"gain": 2}}, {"shape": [3, 5]}, "square matrices only"),
        ("glorot_uniform", {"shape": [20000]}, "(141.421, 141.421), not this request's (20000"),
        ("he_uniform", {"shape": [4] * 6}, "giving (64, 64), not this request's (1024, 1024)"),
        ("lecun_uniform", {"shape": [7]}, "sqrt(prod(shape)) at rank 0, 1 and above 5"),
        ("he_uniform", {"shape": [4, 4], "fan_in": 100}, "no fan_in, fan_out or layout"),
        (
            "glorot_uniform",
            {"shape": [8, 4, 3, 3], "layout": "torch"},
            "giving (96, 96), not this request's (36, 72)",
        ),
    ],
)
def test_tensor_echoes_null_tfjs_with_a_reason_where_tfjs_cannot_load_it(
    client: TestClient, ref: object, fields: dict[str, object], reason: str
) -> None:
    body = client.post("/v1/tensors", json={"initializer": ref, "seed": 3, **fields}).json()
    assert body["tfjs"] is None
    assert reason in body["tfjs_unsupported"]
    assert body["initializer"]["class_name"]  # the canonical echo is still there


@pytest.mark.parametrize(
    ("ref", "shape"),
    [
        ("he_uniform", [4, 4]),
        ("identity", [5, 5]),
        ("glorot_uniform", [1, 1, 1, 1, 8, 8]),  # sqrt(64) = 8: TF.js's fans are Keras's
        ("he_uniform", [1]),
        ("lecun_uniform", []),
        ("glorot_uniform", [3, 3, 4, 8]),
        ("random_uniform", [20000]),
    ],
)
def test_tensor_echoes_loadable_tfjs_without_a_reason(
    client: TestClient, ref: str, shape: list[int]
) -> None:
    body = client.post("/v1/tensors", json={"shape": shape, "initializer": ref}).json()
    assert body["tfjs"]["className"] == engine.resolve(ref).tfjs_class
    assert "tfjs_unsupported" not in body
