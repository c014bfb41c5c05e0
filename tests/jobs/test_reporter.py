"""The worker-side reporter on a real Redis: a cancel reaches a running run within one batch;
writes stay the same size however long the run (append-only records, capped at submission)."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import redis

from app.config import get_settings
from app.jobs.reporter import RedisRunReporter
from app.jobs.store import JobStore
from app.jobs.watchers import CancelWatcher

SPEC = {"dataset": {"name": "circles"}, "schemes": [{"label": "he", "initializer": "he"}]}
RUNS = [{"scheme": 0, "label": "he", "repeat": 0, "seed": 0, "total_batches": 1000}]


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_url)
    yield JobStore(client, ttl_seconds=600)
    client.close()


def _reporter(
    store: JobStore,
    job_id: str,
    cancelled: threading.Event | None = None,
    *,
    total_batches: int = 1000,
    **settings_update: Any,
) -> RedisRunReporter:
    claim = store.claim_run(job_id, 0, "w", 30)
    assert claim.ok
    # The fallback flag read is pushed out of reach: only the published cancel can stop it.
    settings = get_settings().model_copy(update={"cancel_check_seconds": 3600.0, **settings_update})
    reporter = RedisRunReporter(
        store,
        job_id,
        0,
        claim.attempt,
        total_batches=total_batches,
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


def test_points_of_a_write_refused_by_a_cancel_are_stored_once_by_the_finish(
    store: JobStore,
) -> None:
    """A cancel lands between the run's last flush and its finish: the refused flush's points
    go with the finish (before, they were dropped: the refusal read as a written write)."""
    job_id = store.create_job(SPEC, RUNS)["id"]
    reporter = _reporter(store, job_id, progress_interval_seconds=3600.0)
    for step in range(5):  # the first is written at once, the others wait
        reporter.on_batch(0, step, 1.0 - step / 10)
    assert store.cancel_job(job_id) == "running"
    reporter.flush()
    assert reporter.should_stop() and not reporter.stale
    assert reporter.finish("cancelled") == "cancelled"
    run = store.get_run(job_id, 0)
    assert run is not None and run["status"] == "cancelled"
    assert run["batch_steps"] == [0, 1, 2, 3, 4]
    assert run["batch_losses"] == [1.0, 0.9, 0.8, 0.7, 0.6]


def test_an_epoch_record_and_snapshot_refused_by_a_cancel_are_stored_by_the_finish(
    store: JobStore,
) -> None:
    """A refused write keeps its epoch record and diagnostics snapshot as well as its points,
    and what it did not publish does not count as published."""
    job_id = store.create_job(SPEC, RUNS)["id"]
    reporter = _reporter(store, job_id, progress_interval_seconds=3600.0)
    reporter.on_batch(0, 0, 1.0)  # written at once
    reporter.on_batch(0, 1, 0.5)
    assert store.cancel_job(job_id) == "running"
    reporter.on_epoch({"epoch": 1, "loss": 0.5})
    reporter.on_diagnostics("end", [{"layer": 0}])
    assert reporter.should_stop() and not reporter.stale
    assert (reporter.published_step, reporter.published_epoch) == (1, 0)
    assert reporter.finish("cancelled") == "cancelled"
    run = store.get_run(job_id, 0)
    assert run is not None and run["batch_steps"] == [0, 1]
    assert run["epochs"] == [{"epoch": 1, "loss": 0.5}]
    assert run["diagnostics"] == {"end": [{"layer": 0}]}
    published = [e for _, e in store.read_events(job_id) if e.get("type") in ("progress", "epoch")]
    assert [e["type"] for e in published] == ["progress"]


class _CountingConnection(redis.Connection):
    """A real Redis connection that also records the size of every command it sends."""

    sizes: ClassVar[list[int]] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        data = command if isinstance(command, bytes | str) else b"".join(command)
        type(self).sizes.append(len(data))
        super().send_packed_command(command, check_health)


@pytest.fixture
def counting_store(redis_url: str) -> Iterator[tuple[JobStore, list[int]]]:
    sizes: list[int] = []
    conn = type("Counting", (_CountingConnection,), {"sizes": sizes})
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=conn)
    client = redis.Redis(connection_pool=pool)
    yield JobStore(client, ttl_seconds=600), sizes
    client.close()
    pool.disconnect()


LAYERS = [
    {
        "layer": i,
        "activation_mean": 0.123456789,
        "activation_std": 0.987654321,
        "dead_fraction": 0.1,
        "saturated_fraction": None,
        "gradient_norm": 0.0123456789,
        "bias_gradient_norm": 0.00123456789,
        "weight_norm": 3.14159265,
        "distinct_units": 10,
    }
    for i in range(3)
]


def test_epoch_writes_do_not_grow_with_the_run(
    counting_store: tuple[JobStore, list[int]],
) -> None:
    """2,000 epochs (one batch each, like full-batch circles): every epoch costs the same few
    writes of the same size; the document still has every record."""
    store, sizes = counting_store
    runs = [{**RUNS[0], "total_batches": 2000}]
    job_id = store.create_job(SPEC, runs)["id"]
    reporter = _reporter(store, job_id, total_batches=2000, progress_interval_seconds=3600.0)
    reporter.on_diagnostics("init", LAYERS)
    per_epoch: list[tuple[int, int]] = []  # (commands, bytes) sent for each epoch
    for epoch in range(1, 2001):
        before = (len(sizes), sum(sizes))
        reporter.on_batch(epoch, epoch, 1.0 / epoch)
        record = {
            "epoch": epoch,
            "step": epoch,
            "train_loss": 1.0 / epoch,
            "val_loss": 0.5,
            "train_accuracy": 0.75,
            "val_accuracy": 0.7,
            "seconds": 0.001,
        }
        reporter.on_epoch(record)
        reporter.on_diagnostics(f"epoch_{epoch}", LAYERS)
        per_epoch.append((len(sizes) - before[0], sum(sizes) - before[1]))
    assert reporter.finish("succeeded", final={"val_accuracy": 0.7}) == "succeeded"
    early = per_epoch[20:120]
    late = per_epoch[-100:]
    assert max(c for c, _ in late) <= max(c for c, _ in early) <= 3
    # Same size at epoch 2,000 as at epoch 20 (the old full rewrite grew ~800 B per epoch).
    assert sum(b for _, b in late) <= 1.05 * sum(b for _, b in early)
    assert max(sizes) < 8_000
    doc = store.get_job(job_id)
    assert doc is not None and doc["status"] == "succeeded"
    run = doc["runs"][0]
    assert [e["epoch"] for e in run["epochs"]] == list(range(1, 2001))
    assert list(run["diagnostics"])[:3] == ["init", "epoch_1", "epoch_2"]
    assert len(run["diagnostics"]) == 2001 and run["diagnostics"]["epoch_2000"] == LAYERS
    assert run["final"] == {"val_accuracy": 0.7}


def test_a_2000_epoch_full_batch_run_keeps_at_most_max_epoch_records(
    counting_store: tuple[JobStore, list[int]],
) -> None:
    """Through the service and the real trainer: record.eval_every is set so the run makes
    max_epoch_records records and as many diagnostics snapshots (+ init), each write small."""
    from app.jobs.reporter import execute_run
    from app.jobs.service import prepare_job
    from app.jobs.uploads import DatasetStore

    store, sizes = counting_store
    settings = get_settings().model_copy(update={"max_epoch_records": 50})
    body = {
        "dataset": {"name": "circles", "train_size": 300, "validation_size": 100},
        "model": {"hidden_layers": [10, 5]},
        "training": {"batch_size": "full", "epochs": 2000, "optimizer": {"name": "adam"}},
        "schemes": [{"initializer": "he_normal"}],
        "seed": 3,
    }
    spec, runs = prepare_job(body, DatasetStore(store.redis, ttl_seconds=60), settings)
    assert spec["record"]["eval_every"] == 40
    job_id = store.create_job(spec, runs)["id"]
    sizes.clear()
    assert execute_run(store, job_id, 0, "in-process") == "succeeded"
    run = store.get_run(job_id, 0)
    assert run is not None and run["batch"] == 2000
    assert [e["epoch"] for e in run["epochs"]] == list(range(40, 2001, 40))
    assert len(run["diagnostics"]) == 51 and "epoch_2000" in run["diagnostics"]
    # Linear: 50 records, 51 snapshots, a few throttled progress writes; none large.
    assert max(sizes) < 8_000
    assert sum(sizes) < 200 * 8_000


def test_a_closed_watcher_thread_ends_by_itself(store: JobStore) -> None:
    job_id = store.create_job(SPEC, RUNS)["id"]
    watcher = CancelWatcher(store, job_id, fallback_seconds=3600.0)
    watcher.close()  # does not join: the run's task returns at once
    watcher._thread.join(timeout=CancelWatcher.POLL_SECONDS + 5)
    assert not watcher._thread.is_alive()


@pytest.mark.parametrize(
    ("plot_n", "max_points", "steps"),
    [
        (10, 10, 48),  # the cap equal to the exact prefix: no point after it
        (15_000, 15_000, 15_000),  # dlai-circles
        (20_000, 20_000, 80_000),
        (10, 25, 30),
        (10, 11, 1000),
        (100, 5_000, 1_000),  # room for every step
        (1, 10, 1000),
        (30, 100, 10),  # fewer steps than the exact prefix
        (300, 100, 1000),  # a server cap under the job's plot_n_batches
    ],
)
def test_a_run_keeps_at_most_max_batch_points(
    store: JobStore, plot_n: int, max_points: int, steps: int
) -> None:
    runs = [{**RUNS[0], "total_batches": steps}]
    job_id = store.create_job(SPEC, runs)["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    reporter = RedisRunReporter(
        store,
        job_id,
        0,
        claim.attempt,
        total_batches=steps,
        plot_n_batches=plot_n,
        max_batch_points=max_points,
        settings=get_settings().model_copy(update={"progress_interval_seconds": 3600.0}),
    )
    for step in range(steps):
        reporter.on_batch(1, step, 1.0 / (step + 1))
    assert reporter.finish("succeeded", final={"val_accuracy": 0.5}) == "succeeded"
    run = store.get_run(job_id, 0)
    assert run is not None
    kept = run["batch_steps"]
    assert len(kept) <= max_points
    exact = min(plot_n, max_points, steps)
    assert kept[:exact] == list(range(exact))  # the first plot_n_batches, every one
    tail = kept[exact:]
    assert len({b - a for a, b in itertools.pairwise(tail)}) <= 1  # evenly strided
    if steps <= max_points:
        assert kept == list(range(steps))  # room for all: every step kept
    else:
        assert tail == [] or tail[0] == exact
        if len(tail) > 1 and (stride := tail[1] - tail[0]) > 1:
            # As dense as the cap allows: a stride one smaller would keep too many.
            assert math.ceil((steps - exact) / (stride - 1)) > max_points - exact
