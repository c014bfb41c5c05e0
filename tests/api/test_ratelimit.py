"""Rate limits (``INITLAB_RATE_LIMIT_*``): per caller and route group, counted in Redis so two
real API processes share them; 429 problem+json with ``Retry-After`` and the IETF draft's
``RateLimit`` / ``RateLimit-Policy`` headers; off by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api.ratelimit import KEY_PREFIX, RateLimit, route_group
from app.config import Settings
from app.main import create_app

TENSOR = "/v1/tensors?shape=2&seed=1"
PROBLEM = "application/problem+json"


@pytest.fixture
def fresh_counters(redis_client: Any) -> None:
    for key in redis_client.scan_iter(f"{KEY_PREFIX}:*"):
        redis_client.delete(key)


def stack_has_rate_limit(app: Any) -> bool:
    return any(m.cls is RateLimit for m in app.user_middleware)


def assert_limited(res: httpx.Response, group: str) -> None:
    assert res.status_code == 429, res.text
    assert res.headers["content-type"].startswith(PROBLEM)
    body = res.json()
    assert body["status"] == 429 and body["title"] and group in body["detail"]
    assert int(res.headers["retry-after"]) > 0
    assert res.headers["ratelimit"].startswith(f'"{group}";r=0;t=')


@pytest.mark.integration
def test_limits_are_shared_by_two_api_processes_per_caller_and_group(
    start_api: Callable[..., Any], fresh_counters: None
) -> None:
    env = {
        "INITLAB_RATE_LIMIT_TENSORS": "5/hour",
        "INITLAB_RATE_LIMIT_JOBS": "2/hour",
        "INITLAB_API_KEYS": "alice-key,bob-key",
    }
    a, b = start_api(env=env), start_api(env=env)
    with httpx.Client(base_url=a.url) as one, httpx.Client(base_url=b.url) as two:
        # Tensors, by client address: five in all over the two processes.
        remaining = []
        for client in (one, one, one, two, two):
            res = client.get(TENSOR)
            assert res.status_code == 200, res.text
            assert res.headers["ratelimit-policy"] == '"tensors";q=5;w=3600'
            remaining.append(res.headers["ratelimit"].split(";")[1])
        assert remaining == ["r=4", "r=3", "r=2", "r=1", "r=0"]
        assert_limited(two.get(TENSOR), "tensors")
        assert_limited(one.post("/v1/tensors", json={"shape": [2]}), "tensors")
        # Other groups count on their own; the probes are never limited.
        assert one.get("/healthz").status_code == 200
        assert "ratelimit" not in one.get("/v1/initializers").headers  # default: unlimited

        # Jobs, by API key: Alice's two requests are hers, Bob still has his.
        alice = {"Authorization": "Bearer alice-key"}
        bob = {"X-API-Key": "bob-key"}
        assert one.get("/v1/jobs", headers=alice).status_code == 200
        assert two.get("/v1/jobs", headers=alice).status_code == 200
        assert_limited(one.get("/v1/jobs", headers=alice), "jobs")
        res = two.get("/v1/jobs", headers=bob)
        assert res.status_code == 200 and res.headers["ratelimit"].startswith('"jobs";r=1;t=')
        # A key that is not configured counts against the address, and is still refused.
        assert one.get("/v1/jobs", headers={"X-API-Key": "mallory"}).status_code == 403


def test_limits_are_off_by_default() -> None:
    app = create_app(Settings())
    assert not stack_has_rate_limit(app)
    with TestClient(app) as client:
        res = client.get(TENSOR)
        assert res.status_code == 200 and "ratelimit" not in res.headers


def test_a_limit_setting_is_validated() -> None:
    assert Settings(rate_limit_uploads="10/minute;100/day").rate_limit_uploads
    with pytest.raises(ValidationError, match="rate_limit_jobs"):
        Settings(rate_limit_jobs="ten a minute")


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        ("GET", "/v1/tensors", "tensors"),
        ("POST", "/v1/tensors", "tensors"),
        ("GET", "/v1/jobs", "jobs"),
        ("DELETE", "/v1/jobs/job_1", "jobs"),
        ("GET", "/v1/jobs/job_1/events", "jobs"),
        ("POST", "/v1/datasets", "uploads"),
        ("GET", "/v1/datasets", "default"),
        ("GET", "/v1/initializers/he_normal", "default"),
        ("GET", "/v1/jobsx", "default"),
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/metrics", None),
    ],
)
def test_route_groups(method: str, path: str, group: str | None) -> None:
    assert route_group(method, path) == group


def test_an_unreachable_limit_store_does_not_stop_tensors() -> None:
    # Nothing listens on port 1: the limits cannot be counted, the tensors are still served.
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0", rate_limit_tensors="1/hour"))
    assert stack_has_rate_limit(app)
    with TestClient(app) as client:
        for _ in range(3):
            res = client.get(TENSOR)
            assert res.status_code == 200 and "ratelimit" not in res.headers
