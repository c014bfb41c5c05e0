"""The Redis job record: transitions, idempotent runs, leases, cancellation, listing, expiry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from app.errors import InvalidInputError
from app.jobs.keys import DATASETS_KEY, INDEX_KEY, PRUNE_PER_CREATE, dataset_key, job_key
from app.jobs.runs import REFUSED_CANCELLED
from app.jobs.store import JobStore
from app.jobs.uploads import DatasetStore

SPEC: dict[str, Any] = {
    "dataset": {"name": "circles"},
    "schemes": [{"label": "zeros", "initializer": "zeros"}, {"label": "he", "initializer": "he"}],
    "repeats": 2,
    "record": {"plot_n_batches": 3},
}


def _runs(n_schemes: int = 2, repeats: int = 2) -> list[dict[str, Any]]:
    return [
        {
            "scheme": s,
            "label": SPEC["schemes"][s]["label"],
            "repeat": r,
            "seed": r,
            "total_batches": 10,
        }
        for r in range(repeats)
        for s in range(n_schemes)
    ]


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_url)
    yield JobStore(client, ttl_seconds=3600)
    client.close()


def _finish_all(store: JobStore, job_id: str, n: int, status: str = "succeeded") -> None:
    for i in range(n):
        claim = store.claim_run(job_id, i, "w", 30)
        assert claim.ok
        store.finish_run(job_id, i, claim.attempt, status, fields={"final": {"val_accuracy": 0.5}})


def test_create_job_is_queued_with_its_runs_and_a_ttl(store: JobStore) -> None:
    doc = store.create_job(SPEC, _runs())
    assert doc["status"] == "queued"
    assert doc["progress"] == {
        "runs_total": 4,
        "runs_done": 0,
        "runs_cancelled": 0,
        "fraction": 0.0,
        "eta_seconds": None,
    }
    assert [(r["scheme"], r["repeat"], r["status"]) for r in doc["runs"]] == [
        (0, 0, "queued"),
        (1, 0, "queued"),
        (0, 1, "queued"),
        (1, 1, "queued"),
    ]
    assert doc["spec"] == SPEC
    ttls = [store.redis.ttl(k) for k in store.redis.scan_iter(f"initlab:job:{doc['id']}*")]
    assert ttls and all(0 < t <= 3600 for t in ttls)


def test_unknown_job_reads_as_none(store: JobStore) -> None:
    assert store.get_job("job_nope") is None
    assert store.get_status("job_nope") is None
    assert store.cancel_job("job_nope") is None


def test_status_goes_queued_running_succeeded_with_events(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(2, 1))["id"]
    claim = store.claim_run(job_id, 0, "w1", 30)
    assert claim.ok and claim.attempt == 1
    assert store.get_status(job_id) == "running"
    assert store.update_run(job_id, 0, claim.attempt, points=[(0, 1.5), (1, 1.25)]) == 0
    assert store.finish_run(job_id, 0, claim.attempt, "succeeded") == "succeeded"
    assert store.get_status(job_id) == "running"
    claim1 = store.claim_run(job_id, 1, "w2", 30)
    assert store.finish_run(job_id, 1, claim1.attempt, "diverged") == "diverged"
    doc = store.get_job(job_id)
    assert doc is not None
    assert doc["status"] == "succeeded" and doc["finished_at"] is not None
    assert doc["runs"][0]["batch_losses"] == [1.5, 1.25]
    assert doc["runs"][0]["batch_steps"] == [0, 1]
    assert doc["runs"][1]["diverged"] is True
    types = [(e["type"], e.get("status")) for _, e in store.read_events(job_id)]
    assert types[0] == ("status", "queued")
    assert ("status", "running") in types
    assert types[-2:] == [("status", "succeeded"), ("end", "succeeded")]


def test_failed_run_fails_the_job_with_its_error(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(2, 1))["id"]
    c0 = store.claim_run(job_id, 0, "w", 30)
    store.finish_run(job_id, 0, c0.attempt, "failed", error="boom")
    c1 = store.claim_run(job_id, 1, "w", 30)
    store.finish_run(job_id, 1, c1.attempt, "succeeded")
    doc = store.get_job(job_id)
    assert doc is not None
    assert doc["status"] == "failed"
    assert doc["error"] == "run 0: boom"


def test_a_redelivered_run_overwrites_and_never_duplicates_points(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(2, 1))["id"]
    first = store.claim_run(job_id, 0, "w1", 0.2)
    store.update_run(job_id, 0, first.attempt, points=[(0, 9.0), (1, 8.0)])
    assert store.claim_run(job_id, 0, "w2", 30).state == "busy"  # lease still held
    time.sleep(0.4)  # the first worker "died": its lease lapsed
    second = store.claim_run(job_id, 0, "w2", 30)
    assert second.ok and second.attempt == 2
    # The first attempt's late writes are dropped.
    assert store.update_run(job_id, 0, first.attempt, points=[(2, 7.0)]) == -1
    assert store.finish_run(job_id, 0, first.attempt, "succeeded") == "stale"
    store.update_run(job_id, 0, second.attempt, points=[(0, 1.0), (1, 0.5)])
    assert store.finish_run(job_id, 0, second.attempt, "succeeded") == "succeeded"
    # A third delivery of the same message finds the run done.
    assert store.claim_run(job_id, 0, "w3", 30).state == "done"
    doc = store.get_job(job_id)
    assert doc is not None
    run = doc["runs"][0]
    assert run["batch_steps"] == [0, 1] and run["batch_losses"] == [1.0, 0.5]
    assert run["attempt"] == 2 and doc["progress"]["runs_done"] == 1
    assert doc["status"] == "running"  # run 1 still to go


def test_orphaned_runs_are_requeued_once(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    claim = store.claim_run(job_id, 0, "w1", 0.2)
    assert (job_id, 0) in store.running_runs()
    assert store.requeue_if_orphaned(job_id, 0) is False  # lease alive
    assert store.renew_lease(job_id, 0, claim.token, 0.2)
    assert not store.renew_lease(job_id, 0, "someone-else#1", 0.2)
    time.sleep(0.4)
    assert store.requeue_if_orphaned(job_id, 0) is True
    assert store.requeue_if_orphaned(job_id, 0) is False  # a second watchdog sees it done
    assert (job_id, 0) not in store.running_runs()
    run = store.get_run(job_id, 0)
    assert run is not None and run["status"] == "queued" and run["requeues"] == 1


def test_cancel_stops_runs_and_is_final(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(2, 1))["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    assert not store.cancel_requested(job_id)
    assert store.cancel_job(job_id) == "running"
    assert store.cancel_requested(job_id)
    # The running attempt is told to stop (its write refused), and its final write keeps
    # "cancelled".
    assert store.update_run(job_id, 0, claim.attempt, points=[(0, 1.0)]) == REFUSED_CANCELLED
    assert store.finish_run(job_id, 0, claim.attempt, "cancelled") == "cancelled"
    assert store.claim_run(job_id, 1, "w", 30).state == "terminal"
    doc = store.get_job(job_id)
    assert doc is not None
    assert doc["status"] == "cancelled"
    assert [r["status"] for r in doc["runs"]] == ["cancelled", "cancelled"]
    assert store.cancel_job(job_id) == "cancelled"  # idempotent
    assert store.read_events(job_id)[-1][1] == {"type": "end", "status": "cancelled"}


def test_a_write_retried_after_a_cancel_reads_as_applied_and_is_stored_once(
    store: JobStore,
) -> None:
    """A write is applied, its reply lost; a cancel lands; the client's retry must answer
    "applied" (1), not "refused" (2), or its points would go again with the finish."""
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    assert store.update_run(job_id, 0, claim.attempt, seq=1, points=[(0, 1.0)]) == 0
    store.cancel_job(job_id)
    assert store.update_run(job_id, 0, claim.attempt, seq=1, points=[(0, 1.0)]) == 1
    # The reporter hands the finish only what was refused: nothing here.
    assert store.finish_run(job_id, 0, claim.attempt, "cancelled") == "cancelled"
    run = store.get_run(job_id, 0)
    assert run is not None and run["batch_steps"] == [0]


def test_a_cancelled_runs_finish_retried_writes_nothing(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    assert store.update_run(job_id, 0, claim.attempt, seq=1, points=[(0, 1.0)]) == 0
    store.cancel_job(job_id)
    for _ in range(2):  # the second as a retry after a lost reply
        out = store.finish_run(
            job_id,
            0,
            claim.attempt,
            "cancelled",
            points=[(1, 0.5)],
            epochs=[{"epoch": 1}],
            diagnostics=[("end", [])],
        )
        assert out == "cancelled"
    run = store.get_run(job_id, 0)
    assert run is not None and run["batch_steps"] == [0, 1]
    assert run["epochs"] == [{"epoch": 1}] and run["diagnostics"] == {"end": []}


def test_a_run_that_completed_before_the_cancel_reached_it_counts_as_succeeded(
    store: JobStore,
) -> None:
    """The race: a run trains its last batch (no batch check came after the cancel), the job is
    cancelled, then the run's finish arrives with its final metrics. Its result stands: the run
    is succeeded, counted in runs_done and in the summary; the job stays cancelled."""
    job_id = store.create_job(SPEC, _runs(2, 1))["id"]
    done = store.claim_run(job_id, 0, "w", 30)
    stopped = store.claim_run(job_id, 1, "w", 30)
    assert store.update_run(job_id, 0, done.attempt, seq=1, fields={"batch": 9}) == 0
    assert store.cancel_job(job_id) == "running"
    final = {"val_accuracy": 0.75, "val_loss": 0.5}
    for _ in range(2):  # the second as a retry after a lost reply: counted once
        store.finish_run(
            job_id,
            0,
            done.attempt,
            "succeeded",
            fields={"batch": 10, "final": final, "last_batch_loss": 0.4},
            points=[(9, 0.4)],
        )
    # The other run got the cancel before its last batch: it stays cancelled, as does a run
    # whose finish after the cancel says it failed.
    assert store.finish_run(job_id, 1, stopped.attempt, "cancelled", fields={"batch": 3}) == (
        "cancelled"
    )
    doc = store.get_job(job_id)
    assert doc is not None and doc["status"] == "cancelled"
    assert [(r["status"], r["batch"]) for r in doc["runs"]] == [("succeeded", 10), ("cancelled", 3)]
    assert doc["runs"][0]["final"] == final and doc["runs"][0]["batch_steps"] == [9]
    progress = doc["progress"]
    assert (progress["runs_done"], progress["runs_cancelled"]) == (1, 1)
    assert progress["fraction"] == 0.65  # run 0 whole, run 1 3 of 10 batches
    zeros, he = doc["summary"]
    assert zeros["runs_finished"] == 1 and zeros["final_val_accuracy"]["mean"] == 0.75
    assert he["runs_finished"] == 0
    job_hash = store.redis.hmget(f"initlab:job:{job_id}", "runs_done", "runs_cancelled")
    assert job_hash == [b"1", b"1"]
    # The stream ended with the cancel: the late result adds no event after "end".
    assert store.read_events(job_id)[-1][1] == {"type": "end", "status": "cancelled"}


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_run_that_did_not_complete_stays_cancelled_whatever_its_finish_says(
    store: JobStore, status: str
) -> None:
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    store.cancel_job(job_id)
    assert store.finish_run(job_id, 0, claim.attempt, status, error="boom") == "cancelled"
    doc = store.get_job(job_id)
    assert doc is not None and doc["runs"][0]["status"] == "cancelled"
    assert doc["error"] is None and doc["progress"]["runs_done"] == 0


def test_cancel_of_a_finished_job_changes_nothing(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    _finish_all(store, job_id, 1)
    assert store.cancel_job(job_id) == "succeeded"
    assert store.get_status(job_id) == "succeeded"


def test_summary_is_per_scheme_in_request_order(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(2, 2))["id"]
    accs = {0: 0.5, 1: 0.9, 2: 0.5, 3: 0.7}
    for i, acc in accs.items():
        c = store.claim_run(job_id, i, "w", 30)
        store.update_run(job_id, i, c.attempt, fields={"batch": 858})
        store.finish_run(
            job_id,
            i,
            c.attempt,
            "succeeded",
            fields={
                "final": {"val_accuracy": acc, "val_loss": 1 - acc},
                "last_batch_loss": 0.25,
                "seconds": 2.0,
                "epochs": [{"epoch": 1}, {"epoch": 2}],
            },
        )
    doc = store.get_job(job_id)
    assert doc is not None
    zeros, he = doc["summary"]
    assert (zeros["label"], he["label"]) == ("zeros", "he")
    assert zeros["final_val_accuracy"] == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}
    assert he["final_val_accuracy"]["mean"] == pytest.approx(0.8)
    assert he["final_val_accuracy"]["std"] == pytest.approx(0.1)
    assert he["last_batch_loss"]["mean"] == 0.25 and he["diverged"] == 0
    assert he["text"] == (
        "he: After 858 Batches (2 Epochs): Validation Accuracy (mean) 0.800 Loss 0.2000"
    )


def test_a_filtered_list_looks_at_a_bounded_number_of_ids_and_pages_on(store: JobStore) -> None:
    """Few matches among many: a page stops after LIST_SCAN_IDS ids, with fewer than
    ``limit`` jobs (none here) and a cursor; paging on still finds every match once."""
    owner = f"scan-{time.time_ns()}"
    ids = [store.create_job(SPEC, _runs(1, 1), owner=owner)["id"] for _ in range(30)]
    for job_id in (ids[0], ids[1]):  # the oldest two, at the end of the newest-first list
        store.claim_run(job_id, 0, "w", 30)
    store.LIST_SCAN_IDS = 20
    page, cursor = store.list_jobs(5, owner=owner, statuses={"running"})
    assert page == [] and cursor is not None
    found: list[str] = []
    pages = 0
    while cursor is not None:
        page, cursor = store.list_jobs(5, cursor, owner=owner, statuses={"running"})
        found += [d["id"] for d in page]
        pages += 1
    assert found == [ids[1], ids[0]] and pages == 1
    store.LIST_SCAN_IDS = JobStore.LIST_SCAN_IDS  # a budget above the index: one full page
    page, cursor = store.list_jobs(5, owner=owner, statuses={"running"})
    assert [d["id"] for d in page] == [ids[1], ids[0]] and cursor is None


def test_list_jobs_pages_newest_first(store: JobStore) -> None:
    ids = [store.create_job(SPEC, _runs(1, 1))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = store.list_jobs(2, cursor)
        seen += [d["id"] for d in page]
        if cursor is None:
            break
    mine = [i for i in seen if i in ids]
    assert mine == list(reversed(ids))
    assert len(seen) == len(set(seen))
    with pytest.raises(InvalidInputError):
        store.list_jobs(2, "not-a-cursor")


def test_jobs_expire_after_their_ttl(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    short = JobStore(client, ttl_seconds=1)
    job_id = short.create_job(SPEC, _runs(1, 1))["id"]
    assert short.get_job(job_id) is not None
    time.sleep(1.5)
    assert short.get_job(job_id) is None
    assert job_id not in [d["id"] for d in short.list_jobs(100)[0]]
    assert client.zscore("initlab:jobs", job_id) is None  # pruned from the index
    client.close()


def test_worker_heartbeats_expire(store: JobStore) -> None:
    store.worker_heartbeat("hb-test@host", 0.3)
    store.worker_heartbeat("hb-other@host", 30)
    assert {"hb-test@host", "hb-other@host"} <= set(store.live_workers())
    time.sleep(0.5)
    assert "hb-test@host" not in store.live_workers()
    # One sorted set, pruned by the next heartbeat: no per-worker keys to SCAN for.
    store.worker_heartbeat("hb-other@host", 30)
    assert store.redis.zscore("initlab:workers", "hb-test@host") is None
    store.worker_gone("hb-other@host")
    assert "hb-other@host" not in store.live_workers()
    assert store.ping()


def test_dataset_store_round_trip_and_listing(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    uploads = DatasetStore(client, ttl_seconds=60)
    blob = bytes(range(256)) * 10
    ds_id = uploads.put(blob, {"n_train": 7})
    assert uploads.get(ds_id) == blob
    meta = uploads.meta(ds_id)
    assert meta is not None and meta["bytes"] == len(blob) and meta["n_train"] == 7
    assert uploads.exists(ds_id) and not uploads.exists("ds_nope")
    assert uploads.get("ds_nope") is None
    assert ds_id in [m["id"] for m in uploads.list()]
    assert 0 < client.ttl(f"initlab:dataset:{ds_id}") <= 60
    # Removed again: the datasets API lists every live upload of the test DB.
    assert uploads.delete(ds_id) and not uploads.exists(ds_id)
    assert ds_id not in [m["id"] for m in uploads.list()]
    client.close()


def test_epochs_and_diagnostics_are_appended_and_read_back_in_order(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    layers = [{"layer": 0, "weight_norm": 1.5}]
    store.update_run(job_id, 0, claim.attempt, diagnostics=[("init", layers)])
    for epoch in (1, 2):
        store.update_run(
            job_id,
            0,
            claim.attempt,
            fields={"epoch": epoch},
            epochs=[{"epoch": epoch, "val_loss": 1.0 / epoch}],
            diagnostics=[(f"epoch_{epoch}", layers)],
            points=[(epoch, 0.5)],
        )
    run = store.get_run(job_id, 0)
    assert run is not None
    assert run["epochs"] == [{"epoch": 1, "val_loss": 1.0}, {"epoch": 2, "val_loss": 0.5}]
    assert list(run["diagnostics"]) == ["init", "epoch_1", "epoch_2"]
    assert run["diagnostics"]["epoch_2"] == layers
    assert run["batch_steps"] == [1, 2] and run["epoch"] == 2
    # Each record is one list item: nothing rewrites the ones before.
    assert store.redis.llen(f"initlab:job:{job_id}:run:0:epochs") == 2
    assert 0 < store.redis.ttl(f"initlab:job:{job_id}:run:0:diag") <= 3600
    # A new attempt starts from empty curves; the job document has the same shape.
    store.redis.delete(f"initlab:job:{job_id}:lease:0")  # the first worker "died"
    again = store.claim_run(job_id, 0, "w2", 30)
    assert again.ok and again.attempt == 2
    doc = store.get_job(job_id)
    assert doc is not None
    assert doc["runs"][0]["epochs"] == [] and doc["runs"][0]["diagnostics"] == {}


def test_queued_runs_are_resent_once_when_due_and_leave_the_index_when_claimed(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, ttl_seconds=600, queued_resend_seconds=0.3)
    job_id = store.create_job(SPEC, _runs(2, 1))["id"]  # recorded; "sent" by nobody
    assert not [m for m in store.queued_due() if m[0] == job_id]  # not due yet
    time.sleep(0.4)
    assert sorted(m for m in store.queued_due() if m[0] == job_id) == [(job_id, 0), (job_id, 1)]
    assert store.resend_if_queued(job_id, 0) is True
    assert store.resend_if_queued(job_id, 0) is False  # a second watchdog: not due any more
    run = store.get_run(job_id, 0)
    assert run is not None and run["status"] == "queued"
    assert client.hget(f"initlab:job:{job_id}:run:0", "resends") == b"1"
    # The next resend waits twice as long (0.6 s after this one).
    score = client.zscore("initlab:queued", f"{job_id}:0")
    assert score is not None and score - time.time() > 0.45
    # Claimed: out of the index; run 1 is claimed by its message meanwhile, so no resend.
    assert store.claim_run(job_id, 1, "w", 30).ok
    assert client.zscore("initlab:queued", f"{job_id}:1") is None
    assert store.resend_if_queued(job_id, 1) is False
    store.cancel_job(job_id)
    assert client.zscore("initlab:queued", f"{job_id}:0") is None
    client.close()


def test_a_requeued_orphan_is_resent_even_if_the_watchdogs_send_failed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, ttl_seconds=600, queued_resend_seconds=0.3)
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    store.claim_run(job_id, 0, "w1", 0.1)
    time.sleep(0.2)
    assert store.requeue_if_orphaned(job_id, 0) is True
    # The watchdog's send_task raised (broker blip): the run is in the queued index anyway.
    time.sleep(0.4)
    assert (job_id, 0) in store.queued_due()
    assert store.resend_if_queued(job_id, 0) is True
    store.cancel_job(job_id)
    client.close()


def test_runs_of_a_finished_or_expired_job_leave_the_queued_index(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, ttl_seconds=1, queued_resend_seconds=0.1)
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    time.sleep(1.3)  # expired with its TTL
    assert (job_id, 0) in store.queued_due()
    assert store.resend_if_queued(job_id, 0) is False
    assert client.zscore("initlab:queued", f"{job_id}:0") is None
    client.close()


def test_a_cancelled_job_counts_cancelled_runs_apart_and_reads_the_work_done(
    store: JobStore,
) -> None:
    job_id = store.create_job(SPEC, _runs(2, 2))["id"]  # 4 runs of 10 batches
    claim = store.claim_run(job_id, 0, "w", 30)
    assert store.update_run(job_id, 0, claim.attempt, fields={"batch": 2}) == 0
    store.cancel_job(job_id)
    doc = store.get_job(job_id)
    assert doc is not None and doc["status"] == "cancelled"
    # 2 of 40 batches ran: 5 %, not 100 %; no run finished by itself.
    assert doc["progress"] == {
        "runs_total": 4,
        "runs_done": 0,
        "runs_cancelled": 4,
        "fraction": 0.05,
        "eta_seconds": None,
    }
    assert store.redis.hget(f"initlab:job:{job_id}", "runs_cancelled") == b"4"


def test_a_job_cancelled_after_some_runs_finished_counts_those_done(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(2, 1))["id"]
    _finish_all(store, job_id, 1)
    store.cancel_job(job_id)
    doc = store.get_job(job_id)
    assert doc is not None
    progress = doc["progress"]
    assert (progress["runs_done"], progress["runs_cancelled"], progress["fraction"]) == (1, 1, 0.5)


def test_status_sets_one_finished_test_for_jobs_and_runs() -> None:
    from app.jobs.status import FINISHED, JobStatus, RunStatus, is_finished

    assert {s for s in RunStatus if is_finished(s)} == FINISHED
    assert {s for s in JobStatus if is_finished(s)} == {"succeeded", "failed", "cancelled"}
    assert not is_finished(None) and not is_finished("running") and is_finished("diverged")


def test_a_report_is_kept_only_for_a_finished_job_with_its_ttl(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    assert store.keep_report(job_id, "png", b"early", 0) is False  # queued: not kept
    assert store.kept_report(job_id, "png") is None
    _finish_all(store, job_id, 1)
    read = store.get_job_writes(job_id)
    assert read is not None and read[1] == 1  # one run finished
    assert store.keep_report(job_id, "png", b"\x89PNG...", read[1]) is True
    assert store.kept_report(job_id, "png") == (b"\x89PNG...", 1)
    assert store.kept_report(job_id, "svg") is None
    assert store.kept_report(job_id, "png", owner="someone-else") is None
    job_ttl = store.redis.pttl(f"initlab:job:{job_id}")
    report_ttl = store.redis.pttl(f"initlab:job:{job_id}:report")
    assert 0 < report_ttl <= job_ttl
    assert job_ttl - report_ttl < 5_000  # expires with the job, not a fresh full TTL later


def test_a_late_write_of_a_cancelled_run_drops_the_kept_report(store: JobStore) -> None:
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    store.cancel_job(job_id)
    read = store.get_job_writes(job_id)
    assert read is not None
    assert store.keep_report(job_id, "svg", b"<svg/>", read[1]) is True
    assert store.finish_run(job_id, 0, claim.attempt, "cancelled", points=[(0, 1.0)]) == (
        "cancelled"
    )
    assert store.kept_report(job_id, "svg") is None  # the document changed: render again


def test_a_report_rendered_before_a_cancelled_runs_late_write_is_not_kept(
    store: JobStore,
) -> None:
    """The race: the API reads the cancelled job and renders; a cancelled run's finish writes
    its last points meanwhile; the rendering is then stale and must not be kept."""
    job_id = store.create_job(SPEC, _runs(1, 1))["id"]
    claim = store.claim_run(job_id, 0, "w", 30)
    store.update_run(job_id, 0, claim.attempt, points=[(0, 1.0)])
    store.cancel_job(job_id)
    read = store.get_job_writes(job_id)
    assert read is not None
    doc, writes = read
    assert doc["status"] == "cancelled" and doc["runs"][0]["batch_steps"] == [0]
    assert store.finish_run(job_id, 0, claim.attempt, "cancelled", points=[(1, 0.5)]) == (
        "cancelled"
    )
    assert store.keep_report(job_id, "svg", b"<svg>step 0 only</svg>", writes) is False
    assert store.kept_report(job_id, "svg") is None
    fresh = store.get_job_writes(job_id)
    assert fresh is not None and fresh[0]["runs"][0]["batch_steps"] == [0, 1]
    assert fresh[1] == writes + 1
    assert store.keep_report(job_id, "svg", b"<svg>steps 0, 1</svg>", fresh[1]) is True


def _expired(client: redis.Redis, keys: list[str]) -> bool:
    """Whether every key is gone, waiting up to 10 s for their TTLs to run out."""
    deadline = time.monotonic() + 10
    while client.exists(*keys) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not client.exists(*keys)


def _creates_prune(
    client: redis.Redis, index: str, stale: list[str], create: Callable[[], str]
) -> str:
    """Create records until no id of ``stale`` is left in ``index``, as many times as one
    pass of the prune cursor over the whole index takes at most; returns the last id made."""
    made = create()
    for _ in range(int(client.zcard(index)) // PRUNE_PER_CREATE + 1):
        if not any(client.zscore(index, i) is not None for i in stale):
            break
        made = create()
    return made


def test_expired_jobs_leave_the_global_index_as_jobs_are_created(redis_url: str) -> None:
    """No owner-less listing: creating jobs prunes the ids of expired ones from initlab:jobs."""
    client = redis.Redis.from_url(redis_url)
    short = JobStore(client, ttl_seconds=1)
    stale = [short.create_job(SPEC, _runs(1, 1))["id"] for _ in range(3)]
    assert _expired(client, [job_key(j) for j in stale])
    assert all(client.zscore(INDEX_KEY, j) is not None for j in stale)  # still listed
    live = _creates_prune(
        client, INDEX_KEY, stale, lambda: short.create_job(SPEC, _runs(1, 1))["id"]
    )
    assert [j for j in stale if client.zscore(INDEX_KEY, j) is not None] == []
    assert client.zscore(INDEX_KEY, live) is not None
    client.close()


def test_expired_uploads_leave_the_global_index_as_uploads_are_made(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    short = DatasetStore(client, ttl_seconds=1)
    stale = [short.put(b"npz bytes", {"name": "x"}, owner=f"pruner-{i}") for i in range(3)]
    assert _expired(client, [dataset_key(d) for d in stale])
    assert all(client.zscore(DATASETS_KEY, d) is not None for d in stale)
    live = _creates_prune(client, DATASETS_KEY, stale, lambda: short.put(b"npz", owner="pruner"))
    assert [d for d in stale if client.zscore(DATASETS_KEY, d) is not None] == []
    assert client.zscore(DATASETS_KEY, live) is not None
    client.close()


def test_the_prune_cursor_looks_at_ids_sharing_a_creation_time_across_calls(
    store: JobStore,
) -> None:
    """Five ids created at the same time, two calls of two ids each: the second call goes on
    after the first's last kept id, not past its score (which would skip c, d, e)."""
    tag = f"initlab-test:prune:{time.time_ns()}"
    index, prefix = f"{tag}:index", f"{tag}:record:"
    store.redis.zadd(index, {name: 1.0 for name in "abcde"})
    store.redis.set(prefix + "a", 1)
    store.redis.set(prefix + "c", 1)
    try:
        removed = [
            store._prune_index(keys=[index, f"{index}:prune"], args=[prefix, 2.0, 2])
            for _ in range(3)
        ]
        assert removed == [1, 1, 1]
        assert store.redis.zrange(index, 0, -1) == [b"a", b"c"]
        assert not store.redis.exists(f"{index}:prune")  # the pass ended: starts over
    finally:
        store.redis.delete(index, f"{index}:prune", prefix + "a", prefix + "c")
