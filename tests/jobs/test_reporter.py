"""The worker-side reporter on a real Redis: a cancel reaches a running run within one batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from app.config import get_settings
from app.jobs.reporter import CancelWatcher, RedisRunReporter
from app.jobs.store import JobStore

SPEC = {"dataset": {"name": "circles"}, "schemes": [{"label": "he", "initializer": "he"}]}
RUNS = [{"scheme": 0, "label": "he", "repeat": 0, "seed": 0, "total_batches": 1000}]


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_url)
    yield JobStore(client, ttl_seconds=600)
    client.close()


def _reporter(store: JobStore, job_id: str, cancelled: threading.Event) -> RedisRunReporter:
    claim = store.claim_run(job_id, 0, "w", 30)
    assert claim.ok
    # The fallback flag read is pushed out of reach: only the published cancel can stop it.
    settings = get_settings().model_copy(update={"cancel_check_seconds": 3600.0})
    reporter = RedisRunReporter(
        store,
        job_id,
        0,
        claim.attempt,
        total_batches=1000,
        plot_n_batches=10,
        max_batch_points=100,
        settings=settings,
        cancelled=cancelled,
    )
    reporter._last_check = float("inf")  # no throttled read either
    return reporter


def test_a_published_cancel_stops_the_run_at_its_next_batch(store: JobStore) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    watcher = CancelWatcher(store, job_id, fallback_seconds=3600.0)
    try:
        reporter = _reporter(store, job_id, watcher.event)
        assert not reporter.should_stop()
        assert store.cancel_job(job_id) == "running"
        # The watcher thread hears the message; the trainer's next should_stop() sees it.
        assert watcher.event.wait(timeout=5)
        assert reporter.should_stop()
    finally:
        watcher.close()


def test_a_run_starting_after_the_cancel_sees_it_at_once(store: JobStore) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    store.cancel_job(job_id)
    watcher = CancelWatcher(store, job_id, fallback_seconds=3600.0)
    try:
        assert watcher.event.is_set()
    finally:
        watcher.close()


def test_the_watcher_of_another_job_is_not_woken(store: JobStore) -> None:
    job_a = store.create_job(SPEC, RUNS)["id"]
    job_b = store.create_job(SPEC, RUNS)["id"]
    watcher = CancelWatcher(store, job_b, fallback_seconds=3600.0)
    try:
        store.cancel_job(job_a)
        assert not watcher.event.wait(timeout=0.5)
    finally:
        watcher.close()
