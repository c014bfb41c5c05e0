"""API keys end to end: a real uvicorn API started with ``INITLAB_API_KEYS`` (comma-separated),
a real Celery worker, real Redis. Two callers each see only their own jobs; the tensor,
catalog and operational endpoints stay open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
KEY_A, KEY_B = "e2e-key-alpha-7f3c", "e2e-key-bravo-91d2"
JOB = {
    "dataset": {"name": "circles", "train_size": 200, "validation_size": 50, "noise": 0.05},
    "model": {"hidden_layers": [8], "activation": "relu"},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 2},
    "schemes": [{"label": "He", "initializer": "he_normal"}],
    "repeats": 1,
    "seed": 5,
}


@pytest.mark.parametrize(
    "api_server", [{"INITLAB_API_KEYS": f" {KEY_A} , {KEY_B} "}], indirect=True
)
def test_two_keys_each_see_only_their_own_jobs(
    api_server: str, start_worker: Callable[..., Any]
) -> None:
    start_worker(concurrency=1, env={"INITLAB_LEASE_SECONDS": "3"})
    with (
        httpx.Client(base_url=api_server, timeout=30) as anon,
        httpx.Client(
            base_url=api_server, timeout=30, headers={"Authorization": f"Bearer {KEY_A}"}
        ) as a,
        httpx.Client(base_url=api_server, timeout=30, headers={"X-API-Key": KEY_B}) as b,
    ):
        # Open: operations, docs, the catalog and tensors.
        for path in (
            "/healthz",
            "/metrics",
            "/docs",
            "/openapi.json",
            "/v1/initializers",
            "/v1/tensors?shape=4,3&initializer=glorot_uniform&seed=3",
        ):
            assert anon.get(path).status_code == 200, path

        # Closed: no key → 401 (WWW-Authenticate), a wrong key → 403, both problem+json.
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/presets")):
            res = anon.request(method, path, json=JOB if method == "POST" else None)
            assert res.status_code == 401, res.text
            assert res.headers["content-type"].startswith(PROBLEM)
            assert res.headers["www-authenticate"] == "Bearer"
            res = anon.request(method, path, headers={"X-API-Key": "nope"})
            assert res.status_code == 403, res.text
            assert res.headers["content-type"].startswith(PROBLEM)

        job_a = submit(a)
        job_b = submit(b)
        done_a = wait_done(a, job_a)
        done_b = wait_done(b, job_b)
        assert done_a["status"] == done_b["status"] == "succeeded"
        # Same spec and seed under two callers: the same curves (ownership changes nothing else).
        assert done_a["runs"][0]["batch_losses"] == done_b["runs"][0]["batch_losses"]

        listed_a = [j["id"] for j in a.get("/v1/jobs").json()["jobs"]]
        listed_b = [j["id"] for j in b.get("/v1/jobs").json()["jobs"]]
        assert job_a in listed_a and job_b not in listed_a
        assert job_b in listed_b and job_a not in listed_b

        for path in ("", "/report.png", "/results.csv", "/events"):
            res = b.get(f"/v1/jobs/{job_a}{path}")
            assert res.status_code == 404, (path, res.text)
            assert res.headers["content-type"].startswith(PROBLEM)
        assert b.delete(f"/v1/jobs/{job_a}").status_code == 404
        assert a.get(f"/v1/jobs/{job_a}/results.csv").status_code == 200
        assert a.get(f"/v1/jobs/{job_a}/report.png").headers["content-type"] == "image/png"


def submit(client: httpx.Client) -> str:
    res = client.post("/v1/jobs", json=JOB)
    assert res.status_code == 202, res.text
    return str(res.json()["id"])


def wait_done(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        res = client.get(f"/v1/jobs/{job_id}")
        assert res.status_code == 200, res.text
        doc = res.json()
        if doc["status"] in ("succeeded", "failed", "cancelled"):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {doc.get('status')} after {timeout} s")
