"""``Idempotency-Key`` on ``POST /v1/jobs``: replays, mismatches, in-flight keys and what an
API that died mid-request leaves behind; in-process on real Redis (each test its own caller).
Two real API processes: tests/api/test_uploads_processes.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.auth import caller_id
from app.config import Settings
from app.jobs.idempotency import IdempotencyKeys, fingerprint, parse_key
from app.jobs.service import prepare_job
from app.jobs.store import JobStore, new_job_id, redis_client
from app.jobs.uploads import DatasetStore

PROBLEM = "application/problem+json"


def job_body(seed: int = 0) -> dict[str, Any]:
    return {
        "dataset": {"name": "circles", "train_size": 32, "validation_size": 8},
        "model": {"hidden_layers": [4]},
        "training": {"epochs": 1},
        "schemes": [{"label": "He", "initializer": "he_normal"}],
        "repeats": 1,
        "seed": seed,
    }


@pytest.fixture
def api_key() -> str:
    return "idem-" + uuid.uuid4().hex


@pytest.fixture
def c(make_client: Callable[..., TestClient], api_key: str) -> Iterator[TestClient]:
    client = make_client(api_keys=[api_key])
    client.headers["X-API-Key"] = api_key
    yield client
    for job in client.get("/v1/jobs").json()["jobs"]:
        client.delete(f"/v1/jobs/{job['id']}")


@pytest.fixture
def keys(redis_url: str) -> Iterator[IdempotencyKeys]:
    client = redis_client(redis_url)
    yield IdempotencyKeys(client, window_seconds=3600)
    client.close()


def post(c: TestClient, key: str | None, body: dict[str, Any]) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return c.post("/v1/jobs", json=body, headers=headers)


def test_the_same_key_and_body_return_the_same_job(c: TestClient) -> None:
    key = f'"{uuid.uuid4()}"'  # a structured-field string, as the draft writes it
    first = post(c, key, job_body())
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    again = post(c, key, job_body())
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    bare = post(c, key.strip('"'), job_body())  # the bare value is the same key
    assert bare.json()["id"] == first.json()["id"]
    assert [j["id"] for j in c.get("/v1/jobs").json()["jobs"]] == [first.json()["id"]]
    # Without a key, or with another one, a new job.
    assert post(c, None, job_body()).json()["id"] != first.json()["id"]
    assert post(c, str(uuid.uuid4()), job_body()).json()["id"] != first.json()["id"]
    assert len(c.get("/v1/jobs").json()["jobs"]) == 3


def test_the_same_key_with_another_body_is_422_naming_the_header(c: TestClient) -> None:
    key = str(uuid.uuid4())
    assert post(c, key, job_body(seed=1)).status_code == 202
    res = post(c, key, job_body(seed=2))
    assert res.status_code == 422 and res.headers["content-type"].startswith(PROBLEM)
    error = res.json()["errors"][0]
    assert error["loc"] == ["header", "Idempotency-Key"] and error["input"] == key
    assert "different request body" in error["msg"]
    # Key order is not a different body.
    reordered = dict(reversed(list(job_body(seed=1).items())))
    assert post(c, key, reordered).status_code == 202


@pytest.mark.parametrize("bad", ["", '""', "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_422_naming_the_header(c: TestClient, bad: str) -> None:
    res = c.post("/v1/jobs", json=job_body(), headers={"Idempotency-Key": bad.encode()})
    assert res.status_code == 422, res.text
    assert res.json()["errors"][0]["loc"][0] == "header"
    assert "idempotency-key" in str(res.json()["errors"][0]["loc"]).lower()
    # The key is echoed as sent: its UTF-8 bytes read as UTF-8, not latin-1 ("cafÃ©").
    assert res.json()["errors"][0]["input"] == bad


def test_header_bytes_read_as_utf8_when_they_are_and_as_latin1_otherwise() -> None:
    from app.api.errors import header_text

    # What the ASGI server hands over: each byte as one latin-1 character.
    assert header_text("caf\u00c3\u00a9") == "caf\u00e9"  # b"caf\xc3\xa9", UTF-8 for café
    assert header_text("caf\u00e9") == "caf\u00e9"  # b"caf\xe9": not UTF-8, kept byte for byte
    assert header_text("plain-key") == "plain-key"


def test_a_key_whose_first_request_is_in_flight_is_409(
    c: TestClient, keys: IdempotencyKeys, api_key: str
) -> None:
    key = str(uuid.uuid4())
    # Another API process reserved it and is still validating/recording.
    claim = keys.reserve(caller_id(api_key), key, job_body(), new_job_id())
    assert not claim.replay
    res = post(c, key, job_body())
    assert res.status_code == 409, res.text
    assert res.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert c.get("/v1/jobs").json()["jobs"] == []
    # Its request failed before recording: the key is free again.
    keys.release(claim)
    assert post(c, key, job_body()).status_code == 202


def test_an_api_that_died_after_recording_the_job_leaves_it_to_the_retry(
    c: TestClient, keys: IdempotencyKeys, api_key: str, redis_url: str
) -> None:
    """Reserved with its id, job recorded, process killed before commit or answer."""
    owner, key = caller_id(api_key), str(uuid.uuid4())
    client = redis_client(redis_url)
    store = JobStore(client, ttl_seconds=600)
    settings = Settings()
    claim = keys.reserve(owner, key, job_body(), new_job_id())
    spec, runs = prepare_job(job_body(), DatasetStore(client, ttl_seconds=60), settings, owner)
    store.create_job(spec, runs, owner=owner, job_id=claim.job_id)
    res = post(c, key, job_body())
    assert res.status_code == 202 and res.json()["id"] == claim.job_id
    assert res.headers["idempotent-replayed"] == "true"
    assert [j["id"] for j in c.get("/v1/jobs").json()["jobs"]] == [claim.job_id]
    client.close()


def test_an_api_that_died_before_recording_frees_the_key_when_its_lease_lapses(
    c: TestClient, keys: IdempotencyKeys, api_key: str, redis_url: str
) -> None:
    owner, key = caller_id(api_key), str(uuid.uuid4())
    claim = keys.reserve(owner, key, job_body(), new_job_id())
    assert post(c, key, job_body()).status_code == 409
    client = redis_client(redis_url)
    [name] = client.keys(f"initlab:owner:{owner}:idempotency:*")
    client.hset(name, "lease_until", 0)  # the lease ran out: that process is gone
    res = post(c, key, job_body())
    assert res.status_code == 202, res.text
    assert res.json()["id"] != claim.job_id
    assert post(c, key, job_body()).json()["id"] == res.json()["id"]
    assert 0 < client.ttl(name) <= Settings().idempotency_window_seconds
    client.close()


def test_a_refused_submission_does_not_keep_the_key(c: TestClient) -> None:
    key = str(uuid.uuid4())
    bad = {**job_body(), "repeats": 0}
    assert post(c, key, bad).status_code == 422
    assert post(c, key, job_body()).status_code == 202  # the key was not used up


def test_keys_are_per_caller_and_fingerprints_canonical(
    make_client: Callable[..., TestClient],
) -> None:
    a, b = "idem-a-" + uuid.uuid4().hex, "idem-b-" + uuid.uuid4().hex
    c = make_client(api_keys=[a, b])
    key = str(uuid.uuid4())
    ja = c.post("/v1/jobs", json=job_body(1), headers={"X-API-Key": a, "Idempotency-Key": key})
    jb = c.post("/v1/jobs", json=job_body(2), headers={"X-API-Key": b, "Idempotency-Key": key})
    assert ja.status_code == jb.status_code == 202 and ja.json()["id"] != jb.json()["id"]
    for who, job in ((a, ja), (b, jb)):
        c.delete(f"/v1/jobs/{job.json()['id']}", headers={"X-API-Key": who})
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
    assert fingerprint({"seed": 2**80}) != fingerprint({"seed": 2**80 + 1})
    assert parse_key(' "k-1" ') == "k-1"


def test_the_openapi_of_post_jobs_lists_the_header(c: TestClient) -> None:
    op = c.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in params
    assert "24 h" in params["Idempotency-Key"]["description"]
    assert {"409", "422", "429"} <= set(op["responses"])
