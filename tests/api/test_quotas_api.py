"""Per-caller quotas: uploads kept (count, bytes) and runs queued or running, 429 naming the
limit; in-process on real Redis (each test is its own caller: a fresh API key)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.jobs.quotas import RunQuota
from app.jobs.store import JobStore, redis_client

PROBLEM = "application/problem+json"


def npz(n: int = 32, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.normal(size=(n, 3)), y_train=rng.integers(0, 2, n))
    return buf.getvalue()


def job_body(repeats: int = 1, schemes: int = 1) -> dict[str, Any]:
    return {
        "dataset": {"name": "circles", "train_size": 32, "validation_size": 8},
        "model": {"hidden_layers": [4]},
        "training": {"epochs": 1},
        "schemes": [{"label": f"s{i}", "initializer": "he_normal"} for i in range(schemes)],
        "repeats": repeats,
        "seed": 0,
    }


@pytest.fixture
def caller() -> dict[str, str]:
    return {"X-API-Key": "quota-" + uuid.uuid4().hex}


@pytest.fixture
def quota_client(
    make_client: Callable[..., TestClient], caller: dict[str, str], redis_url: str
) -> Iterator[TestClient]:
    c = make_client(
        api_keys=[caller["X-API-Key"]],
        max_uploads_per_caller=2,
        max_upload_bytes_per_caller=3 * len(npz()),
        max_queued_runs_per_caller=4,
    )
    c.headers.update(caller)
    yield c
    # Nothing of this test is left to run on the workers of later tests.
    for job in c.get("/v1/jobs").json()["jobs"]:
        c.delete(f"/v1/jobs/{job['id']}")


def assert_quota(res: Any, limit_name: str, *needles: str) -> dict[str, Any]:
    assert res.status_code == 429, res.text
    assert res.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = res.json()
    assert body["errors"][0]["loc"] == ["quota", limit_name]
    for needle in needles:
        assert needle in body["detail"], body["detail"]
    return body


def upload(c: TestClient, data: bytes) -> Any:
    return c.post("/v1/datasets", files={"file": ("q.npz", data)})


def test_upload_count_quota_is_429_naming_the_limit_and_freed_by_delete(
    quota_client: TestClient,
) -> None:
    first, second = upload(quota_client, npz(seed=1)), upload(quota_client, npz(seed=2))
    assert first.status_code == second.status_code == 201, first.text
    body = assert_quota(
        upload(quota_client, npz(seed=3)), "max_uploads_per_caller", "2 uploads kept", "of 2"
    )
    assert body["status"] == 429 and "INITLAB_MAX_UPLOADS_PER_CALLER" in body["detail"]
    assert quota_client.delete(f"/v1/datasets/{first.json()['id']}").status_code == 204
    assert upload(quota_client, npz(seed=3)).status_code == 201


def test_upload_bytes_quota_counts_what_the_caller_keeps(
    make_client: Callable[..., TestClient], caller: dict[str, str]
) -> None:
    small = npz()
    c = make_client(
        api_keys=[caller["X-API-Key"]], max_upload_bytes_per_caller=int(1.5 * len(small))
    )
    c.headers.update(caller)
    assert upload(c, small).status_code == 201
    body = assert_quota(
        upload(c, npz(seed=5)), "max_upload_bytes_per_caller", f"{len(small)} bytes"
    )
    assert body["errors"][0]["input"] == len(small)
    # Another caller has its own quota.
    other = {"X-API-Key": "quota-" + uuid.uuid4().hex}
    c2 = make_client(api_keys=[other["X-API-Key"]], max_upload_bytes_per_caller=2 * len(small))
    assert (
        c2.post("/v1/datasets", files={"file": ("q.npz", small)}, headers=other).status_code == 201
    )


def test_queued_run_quota_spans_the_callers_jobs_and_is_freed_when_a_job_ends(
    quota_client: TestClient,
) -> None:
    first = quota_client.post("/v1/jobs", json=job_body(repeats=2, schemes=2))
    assert first.status_code == 202, first.text
    body = assert_quota(
        quota_client.post("/v1/jobs", json=job_body()),
        "max_queued_runs_per_caller",
        "4 runs queued or running",
        "of 4",
        "adds 1",
    )
    assert body["errors"][0]["input"] == 4
    assert len(quota_client.get("/v1/jobs").json()["jobs"]) == 1  # nothing was recorded
    assert quota_client.delete(f"/v1/jobs/{first.json()['id']}").status_code == 200
    again = quota_client.post("/v1/jobs", json=job_body(repeats=2, schemes=2))
    assert again.status_code == 202, again.text


def test_run_quota_counts_only_runs_not_done(redis_url: str) -> None:
    client = redis_client(redis_url)
    store = JobStore(client, ttl_seconds=600)
    owner = "q-" + uuid.uuid4().hex[:8]
    quota = RunQuota(client, limit=3, ttl_seconds=600)
    runs = [{"scheme": 0, "label": "a", "repeat": r, "seed": r} for r in range(3)]
    job_id = "job_" + uuid.uuid4().hex[:24]
    quota.admit(owner, job_id, 3)
    # Admitted but not recorded yet: it counts (for RESERVATION_SECONDS).
    assert quota.usage(owner) == 3
    store.create_job(job_body(), runs, owner=owner, job_id=job_id)
    claim = store.claim_run(job_id, 0, "w", 30)
    store.finish_run(job_id, 0, claim.attempt, "succeeded")
    assert quota.usage(owner) == 2
    quota.admit(owner, "job_next", 1)
    store.cancel_job(job_id)
    assert quota.usage(owner) == 1  # job_next (not recorded yet) only
    quota.release(owner, "job_next", 1)
    assert quota.usage(owner) == 0
    client.close()
