"""Jobs end to end: a real uvicorn API, real Celery worker processes, real Redis.

Round trip, two concurrent jobs (spread over two workers, identical curves for the same seed),
cancellation, a ``kill -9`` of a worker mid-job followed by a new worker, a run recorded but
never sent (the API died mid-submission) picked up by the watchdog, expiry, readiness and the
bad-input catalogue of ``POST /v1/jobs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
# Short leases so a killed worker's runs are re-enqueued within seconds, not 30 s.
WORKER_ENV = {"INITLAB_LEASE_SECONDS": "3", "INITLAB_WATCHDOG_INTERVAL_SECONDS": "1"}
TERMINAL = {"succeeded", "failed", "cancelled"}


def circles_job(
    *,
    schemes: list[dict[str, Any]] | None = None,
    repeats: int = 2,
    epochs: int | None = 5,
    steps: int | None = None,
    hidden: list[int] | None = None,
    batch_size: int = 32,
    seed: int = 11,
) -> dict[str, Any]:
    training: dict[str, Any] = {
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "batch_size": batch_size,
    }
    if steps is not None:
        training["steps"] = steps
    else:
        training["epochs"] = epochs
    return {
        "dataset": {"name": "circles", "train_size": 300, "validation_size": 100, "noise": 0.05},
        "model": {"hidden_layers": hidden or [10, 5], "activation": "relu"},
        "training": training,
        "schemes": schemes
        or [
            {"label": "zeros", "initializer": "zeros"},
            {"label": "He", "initializer": "he_normal"},
        ],
        "repeats": repeats,
        "seed": seed,
        "record": {"plot_n_batches": 20, "max_batch_points": 200},
    }


@pytest.fixture
def client(api_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=30) as c:
        yield c


def submit(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    res = client.post("/v1/jobs", json=body)
    assert res.status_code == 202, res.text
    doc: dict[str, Any] = res.json()
    assert res.headers["location"] == f"/v1/jobs/{doc['id']}"
    assert doc["status"] == "queued"
    return doc


def wait_for(
    client: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        res = client.get(f"/v1/jobs/{job_id}")
        assert res.status_code == 200, res.text
        doc = res.json()
        if done(doc):
            return doc
        time.sleep(0.2)
    raise AssertionError(
        f"job {job_id} did not get there in {timeout} s: {doc.get('status')} "
        f"{doc.get('progress')} {[r['status'] for r in doc.get('runs', [])]}"
    )


def finished(doc: dict[str, Any]) -> bool:
    return doc["status"] in TERMINAL


def assert_run_complete(run: dict[str, Any], batches: int) -> None:
    """A finished run recorded every batch once: the first plot_n_batches exactly, then strided."""
    steps = run["batch_steps"]
    assert run["status"] == "succeeded", run
    assert run["batch"] == batches
    assert steps == sorted(set(steps)), "duplicated or out-of-order loss points"
    assert steps[:20] == list(range(20))
    assert len(run["batch_losses"]) == len(steps) <= 200
    assert run["final"]["val_accuracy"] is not None


def test_readyz_needs_a_worker(client: httpx.Client, start_worker: Callable[..., Any]) -> None:
    worker = start_worker(concurrency=1, env=WORKER_ENV)
    deadline = time.monotonic() + 20
    while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    res = client.get("/readyz")
    assert res.status_code == 200, res.text
    assert worker.hostname.split("@")[0] in " ".join(res.json()["workers"])
    worker.stop()  # a warm shutdown removes its heartbeat
    res = client.get("/readyz")
    if res.status_code == 200:  # another test's worker may still be alive: not ours, though
        assert worker.hostname.split("@")[0] not in " ".join(res.json()["workers"])
    else:
        assert res.status_code == 503
        assert res.headers["content-type"].startswith(PROBLEM)
        assert "worker" in res.json()["detail"]


def test_job_round_trip(client: httpx.Client, start_worker: Callable[..., Any]) -> None:
    start_worker(concurrency=2, env=WORKER_ENV)
    job = submit(client, circles_job(epochs=20))
    assert [r["status"] for r in job["runs"]] == ["queued"] * 4
    doc = wait_for(client, job["id"], finished, 90)
    assert doc["status"] == "succeeded", doc["error"]
    assert doc["progress"]["runs_done"] == doc["progress"]["runs_total"] == 4
    assert doc["started_at"] <= doc["finished_at"]
    per_epoch = 10  # ceil(300 / 32)
    for run in doc["runs"]:
        assert_run_complete(run, 20 * per_epoch)
        assert [e["epoch"] for e in run["epochs"]] == list(range(1, 21))
        assert "init" in run["diagnostics"]
    # Repeats of a scheme share their seed across schemes, not across repeats.
    assert [r["seed"] for r in doc["runs"]] == [11, 11, 12, 12]
    zeros, he = doc["summary"]
    assert (zeros["label"], he["label"]) == ("zeros", "He")
    # All-zero weights never break symmetry: the output is constant, accuracy is chance.
    assert zeros["final_val_accuracy"]["max"] == pytest.approx(0.5)
    assert he["final_val_accuracy"]["mean"] > 0.6
    assert he["text"].startswith("He: After 200 Batches (20 Epochs): Validation Accuracy (mean)")
    listing = client.get("/v1/jobs", params={"limit": 1}).json()
    assert listing["jobs"][0]["id"] == job["id"]


def test_two_concurrent_jobs_spread_over_workers_and_reproduce(
    client: httpx.Client, start_worker: Callable[..., Any]
) -> None:
    workers = [start_worker(concurrency=1, env=WORKER_ENV) for _ in range(2)]
    body = circles_job(repeats=2, epochs=20)
    a, b = submit(client, body), submit(client, body)
    doc_a = wait_for(client, a["id"], finished, 120)
    doc_b = wait_for(client, b["id"], finished, 120)
    assert doc_a["status"] == doc_b["status"] == "succeeded"
    names = {w.hostname.split("@")[0] for w in workers}
    assert {r["worker"].split("@")[0] for r in doc_a["runs"] + doc_b["runs"]} == names
    # Same spec and seed, different worker processes → identical curves.
    for ra, rb in zip(doc_a["runs"], doc_b["runs"], strict=True):
        assert ra["batch_losses"] == rb["batch_losses"]
        assert ra["epochs"][-1]["val_loss"] == rb["epochs"][-1]["val_loss"]


def test_cancel_stops_running_runs_and_the_worker_carries_on(
    client: httpx.Client, start_worker: Callable[..., Any]
) -> None:
    worker = start_worker(concurrency=1, env=WORKER_ENV)
    job = submit(client, circles_job(steps=400_000, hidden=[32, 32], repeats=2, batch_size=16))

    def busy(doc: dict[str, Any]) -> bool:
        return any(r["status"] == "running" and r["batch"] > 0 for r in doc["runs"])

    wait_for(client, job["id"], busy, 60)
    res = client.delete(f"/v1/jobs/{job['id']}")
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "cancelled"
    assert {r["status"] for r in res.json()["runs"]} == {"cancelled"}

    def stopped(doc: dict[str, Any]) -> bool:
        return doc["runs"][0]["final"] is not None

    doc = wait_for(client, job["id"], stopped, 30)
    run = doc["runs"][0]
    assert run["status"] == "cancelled"
    assert 0 < run["final"]["steps"] < 400_000  # the trainer stopped early
    time.sleep(1.0)
    again = client.get(f"/v1/jobs/{job['id']}").json()["runs"][0]
    assert again["batch"] == run["batch"]  # and stays stopped
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 200  # idempotent
    # The same worker runs the next job.
    nxt = wait_for(client, submit(client, circles_job(repeats=1))["id"], finished, 60)
    assert nxt["status"] == "succeeded"
    assert worker.alive()


def test_kill9_of_a_worker_mid_job_then_a_new_worker_finishes_it(
    client: httpx.Client, start_worker: Callable[..., Any]
) -> None:
    first = start_worker(concurrency=2, env=WORKER_ENV)
    steps = 10_000
    job = submit(client, circles_job(steps=steps, hidden=[32, 32], repeats=2, batch_size=16))

    def two_running(doc: dict[str, Any]) -> bool:
        return sum(r["status"] == "running" and r["batch"] > 200 for r in doc["runs"]) == 2

    before = wait_for(client, job["id"], two_running, 60)
    killed = {r["index"] for r in before["runs"] if r["status"] == "running"}
    first.kill9()
    assert not first.alive()
    second = start_worker(concurrency=2, env=WORKER_ENV)
    doc = wait_for(client, job["id"], finished, 120)
    assert doc["status"] == "succeeded", doc["error"]
    assert doc["progress"]["runs_done"] == 4
    for run in doc["runs"]:
        assert_run_complete(run, steps)
        assert run["worker"].split("@")[0] == second.hostname.split("@")[0]
        # The killed runs were redone once (attempt 2); the others ran once.
        assert run["attempt"] == (2 if run["index"] in killed else 1)
    assert "re-enqueued" in second.log()


def test_bad_job_inputs_are_clear_4xx_and_nothing_breaks(
    client: httpx.Client, start_worker: Callable[..., Any]
) -> None:
    worker = start_worker(concurrency=1, env=WORKER_ENV)
    good = circles_job(repeats=1)
    cases: list[tuple[Any, int, list[Any] | None, str]] = [
        (
            {**good, "schemes": [{"initializer": "glorot_magic"}]},
            422,
            ["schemes", 0, "initializer"],
            "glorot_magic",
        ),
        ({**good, "dataset": {"name": "imagenet"}}, 422, ["dataset", "name"], "imagenet"),
        ({**good, "dataset": {"name": "upload", "id": "ds_missing"}}, 404, None, "ds_missing"),
        ({**good, "repeats": 1000}, 413, None, "runs per job"),
        ({**good, "model": {"hidden_layers": [60000, 60000]}}, 413, None, "parameters"),
        ({**good, "training": {"epochs": 10**9}}, 413, None, "epochs"),
        ({**good, "training": {"epochs": 1, "steps": 2}}, 422, ["training"], "either"),
        ({**good, "unknown_field": 1}, 422, ["unknown_field"], "unknown_field"),
        ({**good, "schemes": []}, 422, ["schemes"], "schemes"),
        ({"preset": "nope"}, 422, ["preset"], "nope"),
        ([1, 2, 3], 422, None, "JSON object"),
        ({**good, "model": {"hidden_layers": [4], "output_units": 7}}, 422, None, "output_units"),
        (  # ~3.9 GB of activations for one full batch of 50,000 rows: refused, not OOM
            {
                **good,
                "dataset": {"name": "circles", "train_size": 50_000},
                "model": {"hidden_layers": [3000, 3000]},
                "training": {"epochs": 1, "batch_size": "full"},
            },
            413,
            ["training", "batch_size"],
            "max_run_memory_bytes",
        ),
    ]
    for body, status, loc, needle in cases:
        res = client.post("/v1/jobs", json=body)
        assert res.status_code == status, (body, res.text)
        assert res.headers["content-type"].startswith(PROBLEM)
        assert needle in res.text, (needle, res.text)
        if loc is not None:
            assert loc in [e["loc"] for e in res.json()["errors"]], res.text
        if status == 413:  # every limit names its field and the value sent
            assert res.json()["errors"][0]["loc"], res.text
    res = client.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert res.status_code == 422 and res.headers["content-type"].startswith(PROBLEM)
    assert client.get("/v1/jobs/job_nope").status_code == 404
    assert client.delete("/v1/jobs/job_nope").status_code == 404
    assert client.get("/v1/jobs", params={"cursor": "%%%"}).status_code == 422
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422
    # Nothing was lost: a good job still runs, on the same worker.
    doc = wait_for(client, submit(client, good)["id"], finished, 60)
    assert doc["status"] == "succeeded"
    assert worker.alive()


def test_a_run_recorded_but_never_sent_is_picked_up_by_the_watchdog(
    redis_url: str, start_worker: Callable[..., Any]
) -> None:
    """The API recorded the job, then died before sending its runs: the worker's watchdog
    finds them in the queued index and sends them."""
    from app.config import Settings
    from app.jobs.service import prepare_job
    from app.jobs.store import JobStore
    from app.jobs.uploads import DatasetStore

    settings = Settings(redis_url=redis_url, queued_resend_seconds=1.0)
    store = JobStore.from_settings(settings)
    spec, runs = prepare_job(
        circles_job(repeats=1, epochs=3), DatasetStore(store.redis, ttl_seconds=60), settings
    )
    job_id = store.create_job(spec, runs)["id"]  # recorded as queued; nothing sent
    worker = start_worker(concurrency=1, env={**WORKER_ENV, "INITLAB_QUEUED_RESEND_SECONDS": "1"})
    deadline = time.monotonic() + 60
    doc = store.get_job(job_id)
    while doc is not None and doc["status"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.2)
        doc = store.get_job(job_id)
    assert doc is not None and doc["status"] == "succeeded", doc and doc["error"]
    assert all(len(r["epochs"]) == 3 for r in doc["runs"])
    assert "re-sent run 0 of " + job_id in worker.log()
    store.redis.close()


def test_job_on_an_uploaded_dataset(client: httpx.Client, start_worker: Callable[..., Any]) -> None:
    import io

    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0)
    buf = io.BytesIO()
    np.savez(buf, x_train=x[:150], y_train=y[:150], x_val=x[150:], y_val=y[150:])
    res = client.post("/v1/datasets", files={"file": ("quad.npz", buf.getvalue())})
    assert res.status_code == 201, res.text
    ref = res.json()["ref"]
    start_worker(concurrency=1, env=WORKER_ENV)
    body = {**circles_job(repeats=1, epochs=3), "dataset": ref}
    doc = wait_for(client, submit(client, body)["id"], finished, 60)
    assert doc["status"] == "succeeded", doc["error"]
    assert doc["spec"]["dataset_info"]["n_train"] == 150
    assert all(len(r["epochs"]) == 3 for r in doc["runs"])


def test_mnist_without_files_says_where_to_put_them(
    start_api: Callable[..., Any], tmp_path: Path
) -> None:
    api = start_api(env={"INITLAB_DATA_DIR": str(tmp_path), "INITLAB_ALLOW_DOWNLOADS": "false"})
    with httpx.Client(base_url=api.url, timeout=30) as c:
        res = c.post("/v1/jobs", json={"preset": "udacity-mnist"})
    assert res.status_code == 422, res.text
    assert str(tmp_path) in res.text and "train-images-idx3-ubyte" in res.text


def test_jobs_expire_after_their_ttl(
    start_api: Callable[..., Any], start_worker: Callable[..., Any]
) -> None:
    env = {**WORKER_ENV, "INITLAB_JOB_TTL_SECONDS": "4"}
    api = start_api(env=env)
    start_worker(concurrency=1, env=env)
    with httpx.Client(base_url=api.url, timeout=30) as c:
        job = submit(c, circles_job(repeats=1, epochs=1))
        doc = wait_for(c, job["id"], finished, 60)
        assert doc["status"] == "succeeded"
        deadline = time.monotonic() + 30
        while c.get(f"/v1/jobs/{job['id']}").status_code == 200:
            assert time.monotonic() < deadline, "the job outlived its TTL"
            time.sleep(1)
        res = c.get(f"/v1/jobs/{job['id']}")
        assert res.status_code == 404 and res.headers["content-type"].startswith(PROBLEM)
        assert job["id"] not in [j["id"] for j in c.get("/v1/jobs").json()["jobs"]]
