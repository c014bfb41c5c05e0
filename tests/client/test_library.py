"""``app.client`` against a real uvicorn API, Celery worker and Redis: tensors are the API's
own bytes, problems name their field, jobs run to success or cancellation, outputs download."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from client_helpers import Listener, quick_job, wait_status

from app.client import Client, ProblemError, RetryPolicy

pytestmark = pytest.mark.integration


@pytest.fixture
def client(api_server: str) -> Iterator[Client]:
    with Client(api_server) as c:
        yield c


@pytest.fixture
def raw(api_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=30) as c:
        yield c


@pytest.mark.parametrize(
    ("initializer", "dtype"),
    [
        ("he_normal", "float32"),
        ("glorotUniform", "float64"),
        ("orthogonal", "float16"),
        ("lecun_normal", "bfloat16"),
        ("ones", "int32"),
    ],
)
def test_a_tensor_is_the_bytes_the_api_sends(
    client: Client, raw: httpx.Client, initializer: str, dtype: str
) -> None:
    query = {"shape": "33,17", "initializer": initializer, "seed": "7", "dtype": dtype}
    served = raw.get("/v1/tensors", params=query, headers={"Accept": "application/octet-stream"})
    assert served.status_code == 200
    tensor = client.tensors.get([33, 17], initializer, seed=7, dtype=dtype)
    assert tensor.array.shape == (33, 17)
    assert str(tensor.array.dtype) == dtype
    assert tensor.array.tobytes() == served.content
    assert tensor.seed == 7
    assert tensor.initializer == json.loads(served.headers["x-initializer"])
    npy = raw.get("/v1/tensors", params={**query, "format": "npy"})
    via_npy = client.tensors.get([33, 17], initializer, seed=7, dtype=dtype, format="npy")
    assert via_npy.array.tobytes() == np.load(io.BytesIO(npy.content)).tobytes()
    assert via_npy.array.tobytes() == served.content


def test_a_keras_object_reference_and_the_echoed_initializer_reproduce_the_tensor(
    client: Client, raw: httpx.Client
) -> None:
    ref = {
        "class_name": "VarianceScaling",
        "config": {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal", "seed": 11},
    }
    body = {"shape": [3, 3, 8, 16], "initializer": ref}
    served = raw.post("/v1/tensors", json=body, headers={"Accept": "application/octet-stream"})
    tensor = client.tensors.get([3, 3, 8, 16], ref)
    assert tensor.array.tobytes() == served.content
    assert tensor.fan_in == 72 and tensor.fan_out == 144  # 3·3·8, 3·3·16
    assert tensor.initializer is not None
    again = client.tensors.get([3, 3, 8, 16], tensor.initializer)
    assert again.array.tobytes() == served.content


def test_without_a_seed_the_server_draws_one_that_reproduces_the_tensor(client: Client) -> None:
    first = client.tensors.get([64, 32], "glorot_uniform")
    assert first.seed is not None
    assert np.array_equal(
        client.tensors.get([64, 32], "glorot_uniform", seed=first.seed).array, first.array
    )


@pytest.mark.parametrize(
    ("call", "status", "field", "value"),
    [
        (lambda c: c.tensors.get([3, -2], "he_normal"), 422, "query.shape.1", -2),
        (lambda c: c.tensors.get([3, 2], "he_nrmal"), 404, "query.initializer", "he_nrmal"),
        (lambda c: c.tensors.get([3, 2], "he_normal", dtype="float8"), 422, "query.dtype", None),
        (lambda c: c.tensors.get([10**6, 10**6], "zeros"), 413, "query.shape", None),
        (lambda c: c.initializers.get("nope_nope"), 404, "path.name", "nope_nope"),
        (
            lambda c: c.jobs.submit(preset="dlai-circles", overrides={"repeats": 0}),
            422,
            "repeats",
            0,
        ),
        (lambda c: c.jobs.get("job_000000000000000000000000"), 404, None, None),
    ],
)
def test_a_problem_is_raised_as_problem_error_naming_the_field(
    client: Client, call: Callable[[Client], Any], status: int, field: str | None, value: Any
) -> None:
    with pytest.raises(ProblemError) as caught:
        call(client)
    problem = caught.value
    assert problem.status == status
    assert problem.field == field
    if value is not None:
        assert problem.value == value
    assert problem.detail and problem.title
    assert str(status) in str(problem)


def test_catalog_presets_datasets_and_models(client: Client, raw: httpx.Client) -> None:
    names = {e.name for e in client.initializers.list()}
    assert {"he_normal", "glorot_uniform", "orthogonal"} <= names
    he = client.initializers.get("HeNormal")
    assert he.name == "he_normal" and "heNormal" in he.aliases
    assert he.frameworks["tfjs"] and he.formula

    presets = {p.name: p for p in client.presets.list()}
    assert {"udacity-fashion", "dlai-circles"} <= set(presets)
    circles = client.presets.get("dlai-circles")
    assert circles.body == presets["dlai-circles"].body and circles.runs == 3

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, x_train=x, y_train=(x[:, 0] > 0).astype(np.int64))
    upload = client.datasets.upload(buf.getvalue(), name="tiny")
    assert upload.kind == "upload" and upload.id and upload.n_train == 40
    assert upload.ref == {"name": "upload", "id": upload.id}
    listed = {d.id: d for d in client.datasets.list() if d.id}
    assert listed[upload.id].name == "tiny"
    assert {d.name for d in client.datasets.list()} >= {"circles", "fashion-mnist"}
    client.datasets.delete(upload.id)
    with pytest.raises(ProblemError) as gone:
        client.datasets.get(upload.id)
    assert gone.value.status == 404

    spec = {"input_shape": [20], "layers": [{"type": "dense", "units": 8}], "seed": 3}
    model = client.models.create(spec)
    assert [(w.name, w.shape) for w in model.weights] == [
        ("dense/kernel", [20, 8]),
        ("dense/bias", [8]),
    ]
    assert client.models.get(model.id).id == model.id
    npz = raw.get(f"/v1/models/{model.id}/weights.npz").content
    assert client.models.download(model.id, "weights.npz") == npz
    weights = client.models.weights(model.id)
    assert list(weights) == ["dense/kernel", "dense/bias"]
    assert weights["dense/kernel"].shape == (20, 8)


def test_a_job_submitted_followed_by_its_events_and_waited_for_succeeds(
    client: Client, start_worker: Callable[..., Any]
) -> None:
    start_worker(concurrency=1)
    job = client.jobs.submit(preset="dlai-circles", overrides=quick_job(steps=60))
    assert job.status == "queued" and job.progress.runs_total == 3
    events = list(client.jobs.events(job.id))
    assert events[0].event == "progress"
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
    assert any(e.event == "points" and e.data["points"] for e in events)
    assert len({e.id for e in events}) == len(events)  # every event has its own id
    done = client.jobs.wait(job.id, timeout=120)
    assert done.finished and done.status == "succeeded"
    assert [s.label for s in done.summary] == ["zeros", "large random", "He"]
    assert all(r.status == "succeeded" and r.batch == 60 for r in done.runs)
    assert done.summary[0].final_val_accuracy.mean == pytest.approx(0.5)  # zeros: symmetric

    # Resuming after an event replays only what came after it (events the server derives,
    # ids "<entry>.<n>", are derived again).
    entries = [e for e in events if "." not in e.id]
    middle = entries[len(entries) // 2]
    resumed = list(client.jobs.events(job.id, after=middle.id))
    assert resumed[-1].event == "end"
    later = [_position(e.id) for e in resumed if "." not in e.id]
    assert later and min(later) > _position(middle.id)
    assert len(resumed) < len(events)

    assert client.jobs.report(job.id, "png").startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in client.jobs.report(job.id, "svg")[:2000]
    summary_csv = client.jobs.results_csv(job.id, "summary")
    assert summary_csv.splitlines()[0].startswith("scheme,label,final_val_accuracy_mean")
    assert len(summary_csv.splitlines()) == 4
    assert job.id in {j.id for j in client.jobs.list(limit=100).jobs}
    assert job.id in {j.id for j in client.jobs.iter(page_size=1)}  # page by page
    with pytest.raises(ProblemError) as finished:
        client.jobs.cancel(job.id)
    assert finished.value.status == 409 and "succeeded" in finished.value.detail


def _position(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def test_the_idempotency_key_makes_a_retried_submission_the_same_job(client: Client) -> None:
    key = f"client-test-{uuid.uuid4()}"
    body = quick_job(steps=5)
    first = client.jobs.submit(preset="dlai-circles", overrides=body, idempotency_key=key)
    again = client.jobs.submit(preset="dlai-circles", overrides=body, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(ProblemError) as other:
        client.jobs.submit(preset="dlai-circles", overrides=quick_job(6), idempotency_key=key)
    assert other.value.status == 422 and other.value.field == "header.Idempotency-Key"
    assert client.jobs.cancel(first.id).status == "cancelled"
    assert client.jobs.submit(preset="dlai-circles", overrides=body).id != first.id


def test_a_cancelled_job_ends_cancelled(client: Client, start_worker: Callable[..., Any]) -> None:
    start_worker(concurrency=1)
    job = client.jobs.submit(preset="dlai-circles", overrides=quick_job(steps=15000))
    assert wait_status(client, job.id, {"running"}) == "running"
    assert client.jobs.cancel(job.id).status == "cancelled"
    done = client.jobs.wait(job.id, timeout=60)
    assert done.status == "cancelled"
    assert done.progress.runs_cancelled >= 1
    assert client.jobs.cancel(job.id).status == "cancelled"  # cancelling again is a no-op


def test_jobs_list_and_iter_filter_by_status_across_pages(client: Client) -> None:
    # No worker: both jobs stay queued until one is cancelled.
    kept, cancelled = (
        client.jobs.submit(preset="dlai-circles", overrides=quick_job(5)) for _ in "ab"
    )
    client.jobs.cancel(cancelled.id)
    queued = list(client.jobs.iter(page_size=1, status="queued"))
    assert kept.id in {j.id for j in queued} and cancelled.id not in {j.id for j in queued}
    assert {j.status for j in queued} == {"queued"}
    either = client.jobs.list(limit=100, status=["cancelled", "queued"]).jobs
    assert {kept.id, cancelled.id} <= {j.id for j in either}
    assert cancelled.id in {j.id for j in client.jobs.iter(page_size=2, status=("cancelled",))}
    with pytest.raises(ProblemError) as bad:
        client.jobs.list(status="done")
    assert bad.value.status == 422 and bad.value.field == "query.status"
    client.jobs.cancel(kept.id)


def cutting_proxy(upstream: str, limit: int) -> Listener:
    """A TCP proxy to ``upstream`` that closes every connection after ``limit`` bytes went
    back to the client (the event stream breaks mid-way, again and again)."""
    host, _, port = upstream.removeprefix("http://").partition(":")

    def pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while limit is None or sent < limit:
                data = src.recv(min(4096, limit - sent) if limit else 4096)
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def handle(conn: socket.socket) -> None:
        server = socket.create_connection((host, int(port)))
        threading.Thread(target=pipe, args=(conn, server, None), daemon=True).start()
        threading.Thread(target=pipe, args=(server, conn, limit), daemon=True).start()

    return Listener(handle)


def test_a_broken_event_stream_is_resumed_without_losing_or_repeating_an_event(
    client: Client, api_server: str, start_worker: Callable[..., Any]
) -> None:
    start_worker(concurrency=1)
    job = client.jobs.submit(preset="dlai-circles", overrides=quick_job(steps=40))
    assert client.jobs.wait(job.id, timeout=120).status == "succeeded"
    whole = [e for e in client.jobs.events(job.id) if "." not in e.id]
    proxy = cutting_proxy(api_server, limit=1500)
    try:
        with Client(proxy.url, retry=RetryPolicy(attempts=3, backoff=0.01)) as cut:
            events = list(cut.jobs.events(job.id))
    finally:
        proxy.close()
    assert proxy.connections >= 3  # it did break, more than once
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
    entries = [e for e in events if "." not in e.id]
    assert [e.id for e in entries] == [e.id for e in whole]
    assert [e.data for e in entries] == [e.data for e in whole]
