"""API keys (``INITLAB_API_KEYS``) and caller-scoped jobs and uploads, in-process on real Redis.

Jobs are written with ``JobStore.create_job(owner=...)`` (nothing is enqueued here); the e2e
test submits real ones over HTTP to real workers.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.auth import caller_id
from app.config import Settings
from app.jobs.store import ANONYMOUS, JobStore, redis_client

PROBLEM = "application/problem+json"
KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-fedcba9876543210"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"X-API-Key": KEY_B}

# Every endpoint behind the keys (method, path); ids need not exist: auth comes first.
PROTECTED = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/job_x"),
    ("DELETE", "/v1/jobs/job_x"),
    ("GET", "/v1/jobs/job_x/report.png"),
    ("GET", "/v1/jobs/job_x/results.csv"),
    ("GET", "/v1/jobs/job_x/events"),
    ("POST", "/v1/datasets"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/circles"),
    ("DELETE", "/v1/datasets/ds_x"),
    ("GET", "/v1/presets"),
    ("GET", "/v1/presets/dlai-circles"),
]
PUBLIC = [
    "/healthz",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/v1/initializers",
    "/v1/initializers/he_normal",
    "/v1/tensors?shape=3,4&initializer=he_normal&seed=1",
]


@pytest.fixture
def keyed(make_client: Callable[..., TestClient], redis_url: str) -> TestClient:
    return make_client(api_keys=[KEY_A, KEY_B])


@pytest.fixture
def open_client(make_client: Callable[..., TestClient], redis_url: str) -> TestClient:
    return make_client()


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis_client(redis_url)
    yield JobStore(client, ttl_seconds=600)
    client.close()


def new_job(store: JobStore, owner: str) -> str:
    spec = {
        "dataset": {"name": "circles"},
        "model": {"hidden_layers": [4]},
        "training": {"epochs": 1},
        "schemes": [{"label": "He", "initializer": "he_normal"}],
        "repeats": 1,
        "seed": 0,
    }
    run = {"scheme": 0, "label": "He", "initializer": "he_normal", "repeat": 0, "seed": 0}
    return str(store.create_job(spec, [run], owner=owner)["id"])


def npz_bytes() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(
        buf, x_train=rng.normal(size=(32, 3)).astype(np.float32), y_train=rng.integers(0, 2, 32)
    )
    return buf.getvalue()


def problem(res: Any, status: int) -> dict[str, Any]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = res.json()
    assert body["status"] == status and body["detail"]
    return body


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("raw", "keys"),
    [
        ("k1,k2", ["k1", "k2"]),
        (" k1 , k2 ,", ["k1", "k2"]),
        ("single", ["single"]),
        ('["k1", "k,2"]', ["k1", "k,2"]),
        ("", []),
    ],
)
def test_api_keys_env_is_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch, raw: str, keys: list[str]
) -> None:
    monkeypatch.setenv("INITLAB_API_KEYS", raw)
    assert Settings().api_keys == keys


def test_api_keys_env_rejects_a_broken_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INITLAB_API_KEYS", '["k1", ')
    with pytest.raises(ValueError, match="api_keys"):
        Settings()


# ------------------------------------------------------------------------------ 401 / 403


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_endpoints_need_a_key(keyed: TestClient, method: str, path: str) -> None:
    res = keyed.request(method, path)
    body = problem(res, 401)
    assert res.headers["www-authenticate"] == "Bearer"
    assert body["title"] == "Unauthorized" and body["type"].endswith("/unauthorized")
    assert "X-API-Key" in body["detail"] and "Bearer" in body["detail"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_an_unknown_key_is_forbidden(keyed: TestClient, method: str, path: str) -> None:
    res = keyed.request(method, path, headers={"X-API-Key": "not-a-key"})
    body = problem(res, 403)
    assert body["title"] == "Forbidden"
    assert "not-a-key" not in res.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {KEY_A}x"},
        {"Authorization": f"Bearer {KEY_A[:-1]}"},
        {"X-API-Key": KEY_A.upper()},
    ],
)
def test_near_misses_are_forbidden(keyed: TestClient, headers: dict[str, str]) -> None:
    problem(keyed.get("/v1/jobs", headers=headers), 403)


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Basic {KEY_A}"}, {"Authorization": "Bearer"}, {"X-API-Key": ""}],
)
def test_no_usable_key_is_unauthorized(keyed: TestClient, headers: dict[str, str]) -> None:
    res = keyed.get("/v1/jobs", headers=headers)
    problem(res, 401)
    assert res.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [A, B, {"authorization": f"bearer {KEY_A}"}, {"x-api-key": KEY_B}],
)
def test_either_header_form_is_accepted(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.get("/v1/jobs", headers=headers).status_code == 200
    assert keyed.get("/v1/presets", headers=headers).status_code == 200


@pytest.mark.parametrize("path", PUBLIC)
def test_tensors_catalog_and_operations_stay_public(keyed: TestClient, path: str) -> None:
    res = keyed.get(path)
    assert res.status_code == 200, (path, res.text)


def test_post_tensors_stays_public(keyed: TestClient) -> None:
    res = keyed.post("/v1/tensors", json={"shape": [2, 2], "initializer": "ones", "seed": 0})
    assert res.status_code == 200, res.text
    assert res.json()["values"] == [1.0, 1.0, 1.0, 1.0]


def test_without_keys_everyone_is_anonymous(open_client: TestClient, store: JobStore) -> None:
    mine = new_job(store, ANONYMOUS)
    theirs = new_job(store, caller_id(KEY_A))
    for headers in ({}, {"X-API-Key": "anything"}, {"Authorization": "Bearer whatever"}):
        listed = [j["id"] for j in open_client.get("/v1/jobs", headers=headers).json()["jobs"]]
        assert mine in listed and theirs not in listed
        assert open_client.get(f"/v1/jobs/{mine}", headers=headers).status_code == 200
    problem(open_client.get(f"/v1/jobs/{theirs}"), 404)


# ------------------------------------------------------------------------------ ownership


def test_each_caller_lists_and_reads_only_its_jobs(keyed: TestClient, store: JobStore) -> None:
    job_a = new_job(store, caller_id(KEY_A))
    job_b = new_job(store, caller_id(KEY_B))
    listed_a = [j["id"] for j in keyed.get("/v1/jobs", headers=A).json()["jobs"]]
    listed_b = [j["id"] for j in keyed.get("/v1/jobs", headers=B).json()["jobs"]]
    assert job_a in listed_a and job_b not in listed_a
    assert job_b in listed_b and job_a not in listed_b
    assert keyed.get(f"/v1/jobs/{job_a}", headers=A).json()["id"] == job_a

    # Another caller's job reads exactly like a job that never existed.
    other = problem(keyed.get(f"/v1/jobs/{job_a}", headers=B), 404)
    unknown = problem(keyed.get("/v1/jobs/job_000000000000000000000000", headers=B), 404)
    assert other["detail"].replace(job_a, "ID") == unknown["detail"].replace(
        "job_000000000000000000000000", "ID"
    )
    for suffix in ("report.png", "report.svg", "results.csv", "events"):
        problem(keyed.get(f"/v1/jobs/{job_a}/{suffix}", headers=B), 404)


def test_listing_pages_within_the_callers_jobs(
    make_client: Callable[..., TestClient], store: JobStore
) -> None:
    key = "key-pages-only-this-test"
    client = make_client(api_keys=[KEY_A, key])
    ids = [new_job(store, caller_id(key)) for _ in range(5)]
    new_job(store, caller_id(KEY_A))  # interleaved, never listed for this caller
    ids.append(new_job(store, caller_id(key)))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params, headers={"X-API-Key": key}).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_only_the_owner_cancels(keyed: TestClient, store: JobStore) -> None:
    job_a = new_job(store, caller_id(KEY_A))
    problem(keyed.delete(f"/v1/jobs/{job_a}", headers=B), 404)
    assert store.get_status(job_a) == "queued"
    res = keyed.delete(f"/v1/jobs/{job_a}", headers=A)
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "cancelled"


def test_the_key_itself_is_never_stored(keyed: TestClient, store: JobStore) -> None:
    job_a = new_job(store, caller_id(KEY_A))
    upload = keyed.post(
        "/v1/datasets", content=npz_bytes(), headers={**A, "content-type": "application/zip"}
    )
    assert upload.status_code == 201, upload.text
    assert KEY_A not in upload.text
    for key in store.redis.scan_iter("initlab:*"):
        if store.redis.type(key) == b"hash":
            values = store.redis.hvals(key)
            assert not any(KEY_A.encode() in v for v in values), key
        assert KEY_A.encode() not in key
    assert caller_id(KEY_A) != caller_id(KEY_B) and len(caller_id(KEY_A)) == 16
    assert store.get_job(job_a, owner=caller_id(KEY_A)) is not None


def test_uploads_belong_to_their_caller(keyed: TestClient) -> None:
    res = keyed.post("/v1/datasets", files={"file": ("mine.npz", npz_bytes())}, headers=A)
    assert res.status_code == 201, res.text
    ds = res.json()["id"]
    assert keyed.get(f"/v1/datasets/{ds}", headers=A).json()["id"] == ds
    problem(keyed.get(f"/v1/datasets/{ds}", headers=B), 404)

    def uploads(headers: dict[str, str]) -> list[str]:
        entries = keyed.get("/v1/datasets", headers=headers).json()["datasets"]
        names = {e["name"] for e in entries}
        assert {"circles", "mnist"} <= names  # built-ins are everyone's
        return [e["id"] for e in entries if e.get("kind") == "upload"]

    assert ds in uploads(A) and ds not in uploads(B)

    # A job of B cannot train on A's upload: it does not exist for B (nothing is enqueued).
    job = {
        "dataset": {"name": "upload", "id": ds},
        "model": {"hidden_layers": [4]},
        "training": {"epochs": 1},
        "schemes": [{"label": "He", "initializer": "he_normal"}],
    }
    body = problem(keyed.post("/v1/jobs", json=job, headers=B), 404)
    assert "dataset.id" in body["detail"] and ds in body["detail"]

    problem(keyed.delete(f"/v1/datasets/{ds}", headers=B), 404)
    assert keyed.get(f"/v1/datasets/{ds}", headers=A).status_code == 200
    res = keyed.delete(f"/v1/datasets/{ds}", headers=A)
    assert res.status_code == 204 and res.content == b""
    problem(keyed.get(f"/v1/datasets/{ds}", headers=A), 404)
    assert ds not in uploads(A)
    problem(keyed.delete(f"/v1/datasets/{ds}", headers=A), 404)


def test_built_in_datasets_cannot_be_deleted(keyed: TestClient) -> None:
    body = problem(keyed.delete("/v1/datasets/circles", headers=A), 409)
    assert "built-in" in body["detail"]
    assert keyed.get("/v1/datasets/circles", headers=B).status_code == 200


# ------------------------------------------------------------------------------ browsers


def test_cors_preflight_allows_the_key_headers(keyed: TestClient) -> None:
    res = keyed.options(
        "/v1/jobs",
        headers={
            "Origin": "https://dashboard.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-api-key, content-type",
        },
    )
    assert res.status_code == 200, res.text
    allowed = {h.strip().lower() for h in res.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "x-api-key", "content-type"} <= allowed
    assert res.headers["access-control-allow-origin"] == "*"
    assert "POST" in res.headers["access-control-allow-methods"]


def test_a_browser_can_read_the_401(keyed: TestClient) -> None:
    res = keyed.get("/v1/jobs", headers={"Origin": "https://dashboard.example"})
    problem(res, 401)
    assert res.headers["access-control-allow-origin"] == "*"


def test_openapi_declares_both_key_schemes(keyed: TestClient) -> None:
    doc = keyed.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    assert schemes["api_key"]["in"] == "header" and schemes["api_key"]["name"] == "X-API-Key"
    assert {"bearer": []} in doc["paths"]["/v1/jobs"]["get"]["security"]
    assert "security" not in doc["paths"]["/v1/tensors"]["get"]
