"""``GET /v1/jobs?status=``: the list filtered by job status, paginated across the whole
index (not page by page), in-process on real Redis.

Jobs are written and moved through their statuses with ``JobStore`` (nothing is enqueued); a
caller of its own (an API key of this module) keeps other tests' jobs out of the listings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.auth import caller_id
from app.jobs.store import JobStore, redis_client
from tests.api.test_auth import new_job, problem

KEY = "key-jobs-list-status-filter"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis_client(redis_url)
    yield JobStore(client, ttl_seconds=600)
    client.close()


@pytest.fixture(scope="module")
def jobs(store: JobStore) -> dict[str, list[str]]:
    """Twelve jobs of this caller, newest last, by status: the running and failed ones sit
    between long runs of others, so a filtered page has to read past them."""
    owner = caller_id(KEY)
    by_status: dict[str, list[str]] = {s: [] for s in ("queued", "running", "failed", "cancelled")}
    for n in range(12):
        job_id = new_job(store, owner)
        if n in (1, 6, 7):
            assert store.claim_run(job_id, 0, "w", 30).ok
            by_status["running"].append(job_id)
        elif n == 10:
            claim = store.claim_run(job_id, 0, "w", 30)
            store.finish_run(job_id, 0, claim.attempt, "failed", error="boom")
            by_status["failed"].append(job_id)
        elif n % 3 == 0:
            store.cancel_job(job_id)
            by_status["cancelled"].append(job_id)
        else:
            by_status["queued"].append(job_id)
    return by_status


@pytest.fixture
def client(make_client: Callable[..., TestClient], redis_url: str) -> TestClient:
    return make_client(api_keys=[KEY])


def every_page(client: TestClient, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every job the list gives, page after page with ``next_cursor``."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        res = client.get("/v1/jobs", params=query, headers=HEADERS)
        assert res.status_code == 200, res.text
        page = res.json()
        assert len(page["jobs"]) <= limit
        seen += page["jobs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("next_cursor never ran out")


@pytest.mark.parametrize("limit", [1, 2, 5, 20])
def test_a_filtered_list_pages_over_every_matching_job(
    client: TestClient, jobs: dict[str, list[str]], limit: int
) -> None:
    for status, ids in jobs.items():
        listed = every_page(client, limit, status=status)
        assert [j["id"] for j in listed] == ids[::-1], status
        assert {j["status"] for j in listed} == {status}


def test_several_statuses_repeated_or_comma_separated(
    client: TestClient, jobs: dict[str, list[str]]
) -> None:
    wanted = set(jobs["running"] + jobs["queued"])
    repeated = every_page(client, 2, status=["running", "queued"])
    comma = every_page(client, 3, status="queued,running")
    assert [j["id"] for j in repeated] == [j["id"] for j in comma]
    assert {j["id"] for j in repeated} == wanted and len(repeated) == len(wanted)
    created = [j["created_at"] for j in repeated]
    assert created == sorted(created, reverse=True)


def test_without_a_filter_every_status_is_listed(
    client: TestClient, jobs: dict[str, list[str]]
) -> None:
    listed = {j["id"] for j in every_page(client, 4)}
    assert listed == {i for ids in jobs.values() for i in ids}


def test_a_status_no_job_has_is_an_empty_page(
    client: TestClient, jobs: dict[str, list[str]]
) -> None:
    res = client.get("/v1/jobs", params={"status": "succeeded"}, headers=HEADERS)
    assert res.status_code == 200
    assert res.json() == {"jobs": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "bad"),
    [
        ("status=finished", "finished"),
        ("status=running&status=Queued", "Queued"),
        ("status=running,diverged", "diverged"),
        ("status=", ""),
        ("status=running,", ""),
    ],
)
def test_an_unknown_status_is_a_422_naming_it(client: TestClient, query: str, bad: str) -> None:
    body = problem(client.get(f"/v1/jobs?{query}", headers=HEADERS), 422)
    assert body["errors"][0]["loc"] == ["query", "status"]
    assert body["errors"][0]["input"] == bad
    assert "cancelled" in body["errors"][0]["msg"]  # says which statuses there are
