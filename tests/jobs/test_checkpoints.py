"""Checkpoints in the Redis run record (real Redis): a claim that finds one resumes (its lists
cut back to what they held then, ``resumed_from_*`` set), it is deleted when the run ends or
is cancelled, an oversized one is not kept (and the record says so), a retried progress
write is applied once, and the job's event stream shows each step and epoch once across a
resume."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from app.config import Settings
from app.jobs.keys import checkpoint_key
from app.jobs.reporter import RedisRunReporter
from app.jobs.runs import REFUSED_CANCELLED, RunClaim
from app.jobs.store import JobStore
from app.training.checkpoint import Checkpoint

SPEC: dict[str, Any] = {"dataset": {"name": "circles"}, "schemes": [{"label": "he"}]}
RUNS = [{"scheme": 0, "label": "he", "repeat": 0, "seed": 0, "total_batches": 10}]


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_url)
    yield JobStore(client, ttl_seconds=3600)
    client.close()


def a_checkpoint(step: int) -> Checkpoint:
    return Checkpoint(
        epoch=2,
        batch=0,
        step=step,
        epochs_done=1,
        params=np.arange(6, dtype=np.float32),
        optimizer_t=step,
        optimizer_state={"exp_avg": np.ones(6, np.float32)},
        losses=np.linspace(1, 0, step, dtype=np.float32),
        shuffle_state={"bit_generator": "PCG64"},
        dropout_state={"bit_generator": "PCG64"},
        epochs=[{"epoch": 1, "step": step}],
    )


def save(store: JobStore, job_id: str, attempt: int, data: bytes, step: int = 2) -> int:
    return store.save_checkpoint(job_id, 0, attempt, data, step=step, epoch=2, epochs_done=1)


def reporter_of(
    store: JobStore, job_id: str, claim: RunClaim, settings: Settings, steps: int = 10
) -> RedisRunReporter:
    """The reporter of ``claim``'s attempt at run 0, keeping every one of ``steps`` points."""
    return RedisRunReporter(
        store,
        job_id,
        0,
        claim.attempt,
        total_batches=steps,
        plot_n_batches=steps,
        max_batch_points=100,
        settings=settings,
        published_step=claim.published_step,
        published_epoch=claim.published_epoch,
    )


def run_doc(store: JobStore, job_id: str) -> dict[str, Any]:
    doc = store.get_job(job_id)
    assert doc is not None
    run: dict[str, Any] = doc["runs"][0]
    return run


def test_a_reclaimed_run_resumes_from_its_checkpoint_with_its_lists_cut_back(
    store: JobStore,
) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    first = store.claim_run(job_id, 0, "w1", 0.3)
    assert first.ok and not first.resumed
    assert store.update_run(job_id, 0, first.attempt, points=[(0, 3.0), (1, 2.0)]) == 0
    store.update_run(job_id, 0, first.attempt, epochs=[{"epoch": 1}], diagnostics=[("init", [])])
    data = a_checkpoint(2).to_bytes()
    assert (
        store.save_checkpoint(job_id, 0, first.attempt, data, step=2, epoch=2, epochs_done=1) == 0
    )
    # Written after the checkpoint, then the worker dies: these must not survive the resume.
    store.update_run(job_id, 0, first.attempt, points=[(2, 1.5)], epochs=[{"epoch": 2}])
    time.sleep(0.5)
    second = store.claim_run(job_id, 0, "w2", 30)
    assert second.ok and second.resumed and second.attempt == 2
    assert store.get_checkpoint(job_id, 0) == data
    run = run_doc(store, job_id)
    assert run["batch_steps"] == [0, 1] and run["epochs"] == [{"epoch": 1}]
    assert run["resumed_from_step"] == 2 and run["resumed_from_epoch"] == 1
    assert run["batch"] == 2 and run["checkpoint_bytes"] == len(data)
    # The first attempt can no longer write a checkpoint.
    assert (
        store.save_checkpoint(job_id, 0, first.attempt, data, step=2, epoch=2, epochs_done=1) == -1
    )
    assert store.finish_run(job_id, 0, second.attempt, "succeeded") == "succeeded"
    assert not store.redis.exists(checkpoint_key(job_id, 0))


def test_a_checkpoint_the_attempt_cannot_use_is_discarded_and_the_lists_reset(
    store: JobStore,
) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    first = store.claim_run(job_id, 0, "w1", 0.3)
    store.update_run(job_id, 0, first.attempt, points=[(0, 3.0)])
    store.save_checkpoint(job_id, 0, first.attempt, b"junk", step=1, epoch=1, epochs_done=0)
    time.sleep(0.5)
    second = store.claim_run(job_id, 0, "w2", 30)
    assert second.resumed
    assert store.discard_checkpoint(job_id, 0, second.attempt)
    run = run_doc(store, job_id)
    assert run["batch_steps"] == [] and run["resumed_from_step"] is None
    assert store.get_checkpoint(job_id, 0) is None


def test_cancel_deletes_the_checkpoints(store: JobStore) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    claim = store.claim_run(job_id, 0, "w1", 30)
    store.save_checkpoint(job_id, 0, claim.attempt, b"x", step=1, epoch=1, epochs_done=0)
    assert store.redis.exists(checkpoint_key(job_id, 0))
    store.cancel_job(job_id)
    assert not store.redis.exists(checkpoint_key(job_id, 0))
    assert (
        store.save_checkpoint(job_id, 0, claim.attempt, b"x", step=1, epoch=1, epochs_done=0)
        == REFUSED_CANCELLED
    )


def test_a_retried_progress_write_is_applied_once(store: JobStore) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    claim = store.claim_run(job_id, 0, "w1", 30)
    for _ in range(2):  # the same write (same seq) sent twice: its reply was lost
        store.update_run(job_id, 0, claim.attempt, seq=1, points=[(0, 1.0)], epochs=[{"e": 1}])
    store.update_run(job_id, 0, claim.attempt, seq=2, points=[(1, 0.5)])
    run = run_doc(store, job_id)
    assert run["batch_steps"] == [0, 1] and run["epochs"] == [{"e": 1}]


def test_a_checkpoint_over_the_limit_is_not_kept_and_the_record_says_so(
    store: JobStore,
) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    claim = store.claim_run(job_id, 0, "w1", 30)
    settings = Settings(max_checkpoint_bytes=3000, checkpoint_seconds=0.001)
    reporter = reporter_of(store, job_id, claim, settings)
    big = a_checkpoint(2)
    big.params = np.zeros(1000, np.float32)
    time.sleep(0.01)
    assert reporter.checkpoint_due(True)
    reporter.save_checkpoint(big)
    run = run_doc(store, job_id)
    assert "over INITLAB_MAX_CHECKPOINT_BYTES (3000)" in run["checkpoint_skipped"]
    assert store.get_checkpoint(job_id, 0) is None
    reporter.on_batch(1, 1, 0.5)
    small = a_checkpoint(1)
    reporter.save_checkpoint(small)
    assert store.get_checkpoint(job_id, 0) == small.to_bytes()
    assert run_doc(store, job_id)["batch_steps"] == [0]  # flushed before the checkpoint


def published(store: JobStore, job_id: str) -> tuple[list[int], list[int]]:
    """The steps of every batch-loss point and the epochs of every epoch record in the job's
    event stream, in stream order."""
    steps: list[int] = []
    epochs: list[int] = []
    for _id, event in store.read_events(job_id, count=10_000):
        if event["type"] == "progress":
            steps += [step for step, _loss in event["points"]]
        elif event["type"] == "epoch":
            epochs.append(event["record"]["epoch"])
    return steps, epochs


def test_a_resumed_attempt_publishes_each_step_and_epoch_once(store: JobStore) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    settings = Settings(progress_interval_seconds=1e-6)
    first = store.claim_run(job_id, 0, "w1", 0.3)
    assert (first.published_step, first.published_epoch) == (0, 0)
    one = reporter_of(store, job_id, first, settings, steps=12)
    for step in range(4):
        one.on_batch(1, step + 1, 1.0)
    one.on_epoch({"epoch": 1, "step": 4})
    one.save_checkpoint(a_checkpoint(4))
    for step in range(4, 10):  # trained past the checkpoint (epoch 2 done), then lost
        one.on_batch(2 + step // 8, step + 1, 1.0)
        if step == 7:
            one.on_epoch({"epoch": 2, "step": 8})
    time.sleep(0.5)

    second = store.claim_run(job_id, 0, "w2", 30)
    assert second.resumed
    assert (second.published_step, second.published_epoch) == (10, 2)
    two = reporter_of(store, job_id, second, settings, steps=12)
    checkpoint = store.get_checkpoint(job_id, 0)
    assert checkpoint is not None
    two.resume_from(Checkpoint.from_bytes(checkpoint))
    for step in range(4, 12):
        two.on_batch(2 + step // 8, step + 1, 0.5)
        if step == 7:
            two.on_epoch({"epoch": 2, "step": 8})
    two.on_epoch({"epoch": 3, "step": 12})
    assert two.finish("succeeded") == "succeeded"

    steps, epochs = published(store, job_id)
    assert steps == list(range(12)) and epochs == [1, 2, 3]
    run = run_doc(store, job_id)
    assert run["batch_steps"] == list(range(12))  # stored: the resumed attempt's from step 4
    assert run["batch_losses"] == [1.0] * 4 + [0.5] * 8
    assert [e["epoch"] for e in run["epochs"]] == [1, 2, 3]


def test_a_diverged_runs_last_points_are_published(store: JobStore) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    claim = store.claim_run(job_id, 0, "w1", 30)
    reporter = reporter_of(store, job_id, claim, Settings(progress_interval_seconds=3600))
    for step in range(3):  # the first is written at once, the rest wait for the interval
        reporter.on_batch(1, step + 1, float("nan") if step == 2 else 1.0)
    assert reporter.finish("diverged") == "diverged"
    assert published(store, job_id)[0] == [0, 1, 2]
    assert run_doc(store, job_id)["batch_steps"] == [0, 1, 2]
