"""Job outputs and dataset uploads through a real uvicorn API, real Celery workers and Redis.

- the SSE stream of a running job yields progress and loss points and ends with ``end``;
- report.png / report.svg / results.csv of the finished job;
- an uploaded ``.npz`` round trip, then a job on it succeeds;
- the bad-upload catalogue (not npz, pickled, wrong shapes, NaN, labels, oversize) → 4xx,
  never 5xx, and the service still runs jobs afterwards.
"""

from __future__ import annotations

import csv
import io
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import httpx_sse
import numpy as np
import pytest

pytestmark = pytest.mark.integration

UPLOAD_LIMIT = 256 * 1024
API_ENV = {"INITLAB_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "INITLAB_ALLOW_DOWNLOADS": "0"}
SCHEMES = [
    {"label": "all zeros", "initializer": "zeros"},
    {"label": "He normal", "initializer": "he_normal"},
]


def circles_job(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset": {"name": "circles", "train_size": 400, "validation_size": 100},
        "model": {"hidden_layers": [16, 8], "activation": "relu"},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "batch_size": 16,
            "epochs": 4,
        },
        "schemes": SCHEMES,
        "repeats": 1,
        "seed": 7,
        "record": {"plot_n_batches": 50},
    }
    body.update(over)
    return body


def npz_bytes(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.fixture(scope="module")
def api(api_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=60) as client:
        yield client


@pytest.fixture
def worker(start_worker: Callable[..., Any]) -> Any:
    return start_worker(concurrency=2)


def wait_done(api: httpx.Client, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@pytest.mark.parametrize("api_server", [API_ENV], indirect=True)
def test_sse_follows_a_real_job_to_its_end(api: httpx.Client, worker: Any) -> None:
    res = api.post("/v1/jobs", json=circles_job())
    assert res.status_code == 202, res.text
    job_id = res.json()["id"]

    events: list[httpx_sse.ServerSentEvent] = []
    with httpx_sse.connect_sse(api, "GET", f"/v1/jobs/{job_id}/events") as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events.extend(source.iter_sse())  # the server closes the stream after "end"
    names = [e.event for e in events]
    assert names[0] == "progress" and names[-1] == "end", worker.log()[-2000:]
    assert events[-1].json()["status"] == "succeeded"
    assert "points" in names and "epoch" in names
    progress = [e.json() for e in events if e.event == "progress"]
    assert progress[-1]["runs_done"] == progress[-1]["runs_total"] == len(SCHEMES)
    assert progress[-1]["fraction"] == 1.0
    steps = [
        p[0]
        for e in events
        if e.event == "points" and e.json()["run"] == 1
        for p in e.json()["points"]
    ]
    assert steps[:50] == list(range(50))  # the first plot_n_batches points, exactly, in order

    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"

    png = api.get(f"/v1/jobs/{job_id}/report.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = api.get(f"/v1/jobs/{job_id}/report.svg")
    assert svg.status_code == 200
    ET.fromstring(svg.content)
    for scheme in SCHEMES:
        assert f"<!-- {scheme['label']} -->" in svg.text
    rows = list(csv.DictReader(io.StringIO(api.get(f"/v1/jobs/{job_id}/results.csv").text)))
    assert len(rows) == len(SCHEMES) * 4
    assert {r["label"] for r in rows} == {s["label"] for s in SCHEMES}
    he_final = [r for r in rows if r["label"] == "He normal"][-1]
    assert float(he_final["val_accuracy"]) == pytest.approx(
        job["runs"][1]["epochs"][-1]["val_accuracy"]
    )


def _object_array_npz() -> bytes:
    x = np.empty((4, 2), dtype=object)
    x[:] = 1.0
    return npz_bytes(x_train=x, y_train=np.zeros(4, dtype=np.int64))


BAD_UPLOADS: list[tuple[str, Callable[[], bytes], int]] = [
    ("not-npz", lambda: b"PK\x03\x04 but not really a zip" * 20, 422),
    ("pickled", _object_array_npz, 422),
    ("wrong-shape", lambda: npz_bytes(x_train=np.zeros((2, 3, 4)), y_train=np.zeros(2, int)), 422),
    (
        "nan",
        lambda: npz_bytes(x_train=np.full((4, 2), np.nan), y_train=np.zeros(4, np.int64)),
        422,
    ),
    (
        "label-range",
        lambda: npz_bytes(x_train=np.zeros((4, 2)), y_train=np.array([0, 1, -3, 1])),
        422,
    ),
    ("oversize", lambda: np.random.default_rng(0).bytes(UPLOAD_LIMIT + 4096), 413),
]


@pytest.mark.parametrize("api_server", [API_ENV], indirect=True)
def test_upload_round_trip_bad_catalogue_then_a_job_on_the_upload(
    api: httpx.Client, worker: Any
) -> None:
    for case, make, status in BAD_UPLOADS:
        res = api.post("/v1/datasets", files={"file": (f"{case}.npz", make())})
        assert res.status_code == status, (case, res.text)
        assert res.headers["content-type"].startswith("application/problem+json")
    # Oversize without a Content-Length: refused while streaming.
    chunks = (b"\0" * 65536 for _ in range(16))
    res = api.post(
        "/v1/datasets", content=chunks, headers={"content-type": "application/octet-stream"}
    )
    assert res.status_code == 413, res.text

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # an XOR-like rule a small MLP learns
    res = api.post(
        "/v1/datasets?name=quadrants",
        content=npz_bytes(x_train=x[:240], y_train=y[:240], x_val=x[240:], y_val=y[240:]),
        headers={"content-type": "application/octet-stream"},
    )
    assert res.status_code == 201, res.text
    upload = res.json()
    assert (upload["n_train"], upload["n_val"], upload["input_dim"]) == (240, 60, 4)
    assert api.get(res.headers["location"]).json()["id"] == upload["id"]
    listed = api.get("/v1/datasets").json()["datasets"]
    assert upload["id"] in [d.get("id") for d in listed]

    body = circles_job(dataset=upload["ref"], schemes=SCHEMES[1:], repeats=2)
    res = api.post("/v1/jobs", json=body)
    assert res.status_code == 202, res.text
    job = wait_done(api, res.json()["id"])
    assert job["status"] == "succeeded", job.get("error")
    assert [len(run["epochs"]) for run in job["runs"]] == [4, 4]
    assert job["summary"][0]["final_val_accuracy"]["mean"] > 0.6

    missing = circles_job(dataset={"name": "upload", "id": "ds_" + "0" * 24})
    res = api.post("/v1/jobs", json=missing)
    assert res.status_code == 404 and "ds_000" in res.text  # api.md: unknown dataset → 404


@pytest.mark.parametrize("api_server", [API_ENV], indirect=True)
def test_a_job_cancelled_early_reads_its_work_done_not_complete(
    api: httpx.Client, worker: Any
) -> None:
    steps = 100_000
    training = {"optimizer": {"name": "adam", "learning_rate": 0.01}, "batch_size": 16}
    res = api.post("/v1/jobs", json=circles_job(training={**training, "steps": steps}, repeats=2))
    assert res.status_code == 202, res.text
    job_id = res.json()["id"]
    events: list[httpx_sse.ServerSentEvent] = []
    cancelled = False
    with httpx_sse.connect_sse(api, "GET", f"/v1/jobs/{job_id}/events") as source:
        for event in source.iter_sse():  # the live stream, while the worker runs
            events.append(event)
            if not cancelled and event.event == "points" and event.json()["batch"] >= 200:
                with httpx.Client(base_url=api.base_url, timeout=30) as other:
                    assert other.delete(f"/v1/jobs/{job_id}").status_code == 200
                cancelled = True
    assert cancelled and events[-1].event == "end", [e.event for e in events][-5:]
    assert events[-1].json()["status"] == "cancelled"
    ids = [e.id for e in events]
    assert all(ids) and len(set(ids)) == len(ids)  # every event resumable, none shared

    total = len(SCHEMES) * 2
    job = wait_done(api, job_id)
    progress = job["progress"]
    assert job["status"] == "cancelled"
    assert (progress["runs_done"], progress["runs_cancelled"]) == (0, total)
    assert 0 < progress["fraction"] < 0.5 and progress["eta_seconds"] is None
    # The stream's last progress says the same: cancelled, not complete.
    last = [e.json() for e in events if e.event == "progress"][-1]
    assert (last["runs_done"], last["runs_cancelled"]) == (0, total)
    assert last["fraction"] < 0.5 and last["eta_seconds"] is None
    running = [e.json() for e in events if e.event == "progress"][:-1]
    assert any(p["status"] == "running" and p["eta_seconds"] is not None for p in running)


def test_redis_gone_mid_stream_ends_it_with_the_reason(
    start_api: Callable[..., Any], tmp_path: Any
) -> None:
    from app.embedded_redis import EmbeddedRedis

    redis_server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        server = start_api({**API_ENV, "INITLAB_REDIS_URL": redis_server.url})
        with httpx.Client(base_url=server.url, timeout=60) as client:
            res = client.post("/v1/jobs", json=circles_job())  # no worker: it stays queued
            assert res.status_code == 202, res.text
            url = f"/v1/jobs/{res.json()['id']}/events"
            events: list[httpx_sse.ServerSentEvent] = []
            with httpx_sse.connect_sse(client, "GET", url) as source:
                for event in source.iter_sse():
                    events.append(event)
                    if len(events) == 1:
                        redis_server.stop()  # the response has started: no 503 any more
    finally:
        redis_server.stop()
    assert events[0].event == "progress" and events[-1].event == "end"
    end = events[-1].json()
    assert end["status"] == "queued" and end["reason"] == "store_unavailable"
    assert "unreachable" in end["detail"]
    assert "127.0.0.1" not in end["detail"] and not re.search(r":\d{2,5}\b", end["detail"])
