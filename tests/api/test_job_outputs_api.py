"""A job's outputs over HTTP (report.png/.svg, results.csv, SSE events) on a real Redis record.

The records are written the way a worker writes them: ``JobStore`` claims and finishes runs and
``RedisRunReporter`` reports batches and epochs.
"""

from __future__ import annotations

import csv
import io
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx_sse
import matplotlib.image
import pytest
from fastapi.testclient import TestClient

from app.jobs.keys import events_key as _events_key
from app.jobs.reporter import RedisRunReporter
from app.jobs.store import JobStore, redis_client

LABELS = ("all zeros", "He normal")
EPOCHS, BATCHES = 2, 15  # 30 steps per run; plot_n_batches 20 → the rest is strided


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis_client(redis_url)
    yield JobStore(client, ttl_seconds=3600)
    client.close()


def new_job(store: JobStore) -> str:
    spec = {
        "dataset": {"name": "circles"},
        "model": {"hidden_layers": [4], "activation": "relu"},
        "training": {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": EPOCHS},
        "schemes": [
            {"label": LABELS[0], "initializer": "zeros"},
            {"label": LABELS[1], "initializer": "he_normal"},
        ],
        "repeats": 1,
        "seed": 0,
        "record": {"plot_n_batches": 20, "max_batch_points": 25},
    }
    runs = [
        {
            "scheme": i,
            "label": label,
            "initializer": "x",
            "repeat": 0,
            "seed": 10 + i,
            "total_batches": EPOCHS * BATCHES,
        }
        for i, label in enumerate(LABELS)
    ]
    return str(store.create_job(spec, runs)["id"])


def run_to_end(store: JobStore, job_id: str, index: int) -> None:
    """One run as a worker does it: claim, report every batch and epoch, finish."""
    claim = store.claim_run(job_id, index, "test-worker@host", 30.0)
    assert claim.ok, claim.state
    reporter = RedisRunReporter(
        store,
        job_id,
        index,
        claim.attempt,
        total_batches=EPOCHS * BATCHES,
        plot_n_batches=20,
        max_batch_points=25,
    )
    for epoch in range(1, EPOCHS + 1):
        for batch in range(BATCHES):
            reporter.on_batch(epoch, batch, 1.0 / (1 + index + epoch * BATCHES + batch))
        acc = 0.5 + 0.2 * index + 0.05 * epoch
        reporter.on_epoch(
            {
                "epoch": epoch,
                "train_loss": 0.5,
                "train_accuracy": acc,
                "val_loss": 0.6,
                "val_accuracy": acc - 0.01,
                "seconds": 0.01,
            }
        )
    final = {"train_loss": 0.5, "train_accuracy": acc, "val_loss": 0.6, "val_accuracy": acc - 0.01}
    assert reporter.finish("succeeded", final=final, seconds=0.02) == "succeeded"


def sse_events(client: TestClient, url: str, **headers: str) -> list[httpx_sse.ServerSentEvent]:
    with httpx_sse.connect_sse(client, "GET", url, headers=headers) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return list(source.iter_sse())


@pytest.mark.parametrize("path", ["report.png", "report.svg", "results.csv", "events"])
def test_unknown_job_is_404_problem(client: TestClient, path: str) -> None:
    res = client.get(f"/v1/jobs/job_000000000000000000000000/{path}")
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("application/problem+json")
    assert "job_000000000000000000000000" in res.json()["detail"]


def test_report_is_409_until_a_run_reports(client: TestClient, store: JobStore) -> None:
    job_id = new_job(store)
    for fmt in ("png", "svg"):
        res = client.get(f"/v1/jobs/{job_id}/report.{fmt}")
        assert res.status_code == 409
        assert res.headers["content-type"].startswith("application/problem+json")
        assert "queued" in res.json()["detail"]
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job_id}/results.csv").text)))
    assert [(r["label"], r["status"], r["epoch"]) for r in rows] == [
        (LABELS[0], "queued", ""),
        (LABELS[1], "queued", ""),
    ]


def test_outputs_of_a_running_then_finished_job(client: TestClient, store: JobStore) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)

    res = client.get(f"/v1/jobs/{job_id}/report.png")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    assert res.headers["cache-control"] == "no-store"
    image = matplotlib.image.imread(io.BytesIO(res.content), format="png")
    assert image.shape[1] == 1000 and image.shape[0] > 800

    run_to_end(store, job_id, 1)
    res = client.get(f"/v1/jobs/{job_id}/report.svg")
    assert res.status_code == 200 and res.headers["content-type"].startswith("image/svg+xml")
    assert "no-store" not in res.headers["cache-control"]
    ET.fromstring(res.content)
    for label in LABELS:
        assert f"<!-- {label} -->" in res.text
    assert client.get(f"/v1/jobs/{job_id}/report.svg").content == res.content

    res = client.get(f"/v1/jobs/{job_id}/results.csv")
    assert res.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert len(rows) == len(LABELS) * EPOCHS
    assert [r["epoch"] for r in rows] == ["1", "2", "1", "2"]
    assert rows[3]["label"] == LABELS[1] and float(rows[3]["val_accuracy"]) == pytest.approx(0.79)

    summary = list(
        csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job_id}/results.csv?kind=summary").text))
    )
    assert [r["label"] for r in summary] == list(LABELS)
    assert float(summary[1]["final_val_accuracy_mean"]) == pytest.approx(0.79)
    assert client.get(f"/v1/jobs/{job_id}/results.csv?kind=all").status_code == 422


def test_results_csv_of_a_finished_job_revalidates_and_sees_a_cancelled_runs_last_points(
    client: TestClient, store: JobStore
) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    claim = store.claim_run(job_id, 1, "test-worker@host", 30.0)
    url = f"/v1/jobs/{job_id}/results.csv"
    running = client.get(url)
    assert running.headers["cache-control"] == "no-store" and "etag" not in running.headers

    store.cancel_job(job_id)
    first = client.get(url, headers={"Accept-Encoding": "identity"})
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"] == "private, no-cache"
    assert first.headers["content-disposition"] == f'attachment; filename="{job_id}-results.csv"'
    same = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    assert "accept-encoding" in same.headers["vary"].lower()  # as the 200's (text/csv)

    # The cancelled run finishes its epoch after the job's status is final: the CSV changes,
    # and the client's copy no longer revalidates.
    epoch = {"epoch": 1, "train_loss": 0.4, "train_accuracy": 0.6, "val_loss": 0.5}
    assert (
        store.finish_run(
            job_id, 1, claim.attempt, "cancelled", epochs=[{**epoch, "val_accuracy": 0.6}]
        )
        == "cancelled"
    )
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    before = list(csv.DictReader(io.StringIO(first.text)))[-1]
    after = list(csv.DictReader(io.StringIO(changed.text)))[-1]
    assert (before["label"], before["epoch"], before["val_accuracy"]) == (LABELS[1], "", "")
    assert (after["label"], after["epoch"], after["val_accuracy"]) == (LABELS[1], "1", "0.6")


def stream_pos(event_id: str) -> tuple[int, int, int]:
    """``<ms>-<seq>[.<n>]`` as a sortable tuple (``.n``: the n-th event derived after it)."""
    position, _, derived = event_id.partition(".")
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0), int(derived or 0)


def data(event: httpx_sse.ServerSentEvent) -> Any:
    return event.json()


def test_event_stream_replays_a_finished_job_and_ends(client: TestClient, store: JobStore) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    run_to_end(store, job_id, 1)
    events = sse_events(client, f"/v1/jobs/{job_id}/events")
    names = [e.event for e in events]
    assert names[0] == "progress" and names[-1] == "end"
    assert data(events[-1]) == {"status": "succeeded"}
    assert {"points", "epoch", "status"} <= set(names)
    points = {run: [] for run in range(len(LABELS))}  # type: dict[int, list[Any]]
    for e in events:
        if e.event == "points":
            points[data(e)["run"]].extend(data(e)["points"])
    # Every stored point arrives once, in order: 20 exact steps, then every 2nd.
    job = store.get_job(job_id)
    assert job is not None
    for run in range(len(LABELS)):
        assert [p[0] for p in points[run]] == job["runs"][run]["batch_steps"]
    last_progress = [data(e) for e in events if e.event == "progress"][-1]
    assert last_progress["runs_done"] == 2 and last_progress["fraction"] == 1.0


def test_last_event_id_resumes_after_that_event(client: TestClient, store: JobStore) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    run_to_end(store, job_id, 1)
    full = sse_events(client, f"/v1/jobs/{job_id}/events")
    ids = [e.id for e in full if e.id]
    middle = ids[len(ids) // 2]
    resumed = sse_events(client, f"/v1/jobs/{job_id}/events", **{"Last-Event-ID": middle})
    assert resumed[0].event == "progress" and resumed[-1].event == "end"
    later = [e for e in full[1:] if e.id and stream_pos(e.id) > stream_pos(middle)]
    assert [(e.event, e.data) for e in resumed[1:] if e.event != "progress"] == [
        (e.event, e.data) for e in later if e.event != "progress"
    ]
    # Resuming past the last event still ends (from the job's status).
    tail = sse_events(client, f"/v1/jobs/{job_id}/events?after={ids[-1]}")
    assert [e.event for e in tail] == ["progress", "end"]


def test_event_stream_follows_a_live_job(client: TestClient, store: JobStore) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    started = threading.Event()

    def finish_later() -> None:
        started.wait(30)
        run_to_end(store, job_id, 1)

    writer = threading.Thread(target=finish_later)
    writer.start()
    try:
        seen: list[httpx_sse.ServerSentEvent] = []
        url = f"/v1/jobs/{job_id}/events"
        with httpx_sse.connect_sse(client, "GET", url) as source:
            for event in source.iter_sse():
                seen.append(event)
                if event.event == "progress" and not started.is_set():
                    assert data(event)["status"] == "running"
                    started.set()
    finally:
        started.set()
        writer.join()
    assert seen[-1].event == "end" and data(seen[-1])["status"] == "succeeded"
    assert any(e.event == "points" and data(e)["run"] == 1 for e in seen)


def test_bad_last_event_id_is_422(client: TestClient, store: JobStore) -> None:
    job_id = new_job(store)
    res = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert res.status_code == 422
    assert res.json()["errors"][0]["loc"] == ["header", "last-event-id"]


@pytest.mark.parametrize(
    "resume",
    [
        str(2**64),
        f"1-{2**64}",
        f"{2**64}-0",
        "9" * 30 + "-0",
        "\u0661\u0662-0",  # Arabic-Indic digits
        "1-0\n",
        "1-",
        "-1",
        f"1-0.{2**64}",
        "1-0.",
        "1-0.1.2",
        ".1",
    ],
)
def test_event_ids_beyond_uint64_or_malformed_are_422(
    client: TestClient, store: JobStore, resume: str
) -> None:
    job_id = new_job(store)
    res = client.get(f"/v1/jobs/{job_id}/events", params={"after": resume})
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert res.json()["errors"][0]["loc"] == ["query", "after"]
    if resume.isascii() and "\n" not in resume:
        header = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": resume})
        assert header.status_code == 422
        assert header.json()["errors"][0]["loc"] == ["header", "last-event-id"]


def test_largest_event_id_is_accepted_and_the_stream_ends(
    client: TestClient, store: JobStore
) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    run_to_end(store, job_id, 1)
    top = f"{2**64 - 1}-{2**64 - 1}"
    events = sse_events(client, f"/v1/jobs/{job_id}/events", **{"Last-Event-ID": top})
    assert [e.event for e in events] == ["progress", "end"]
    assert data(events[-1]) == {"status": "succeeded"}


def test_a_redis_error_on_read_ends_the_stream_cleanly(client: TestClient, store: JobStore) -> None:
    # A key of the wrong type makes XREAD fail on the server (WRONGTYPE): the stream still
    # ends with an `end` event instead of dying (which EventSource would retry forever).
    job_id = new_job(store)
    store.redis.delete(_events_key(job_id))
    store.redis.set(_events_key(job_id), b"not a stream", ex=60)
    events = sse_events(client, f"/v1/jobs/{job_id}/events")
    assert [e.event for e in events] == ["progress", "end"]
    end = data(events[-1])
    assert end["status"] == "queued" and "cannot read events" in end["detail"]


def finished_job(store: JobStore) -> str:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    run_to_end(store, job_id, 1)
    return job_id


# (path, an Accept it cannot produce, Accepts it answers)
NEGOTIATED = [
    ("report.png", "image/svg+xml", ["image/png", "image/*", "text/html, */*;q=0.8"]),
    ("report.svg", "image/png", ["image/svg+xml", "image/*;q=0.5"]),
    ("results.csv", "application/json", ["text/csv", "text/*"]),
    ("events", "application/json", ["text/event-stream"]),
]


@pytest.mark.parametrize(("path", "refused", "accepted"), NEGOTIATED)
def test_job_outputs_answer_406_for_an_accept_they_cannot_produce(
    client: TestClient, store: JobStore, path: str, refused: str, accepted: list[str]
) -> None:
    job_id = finished_job(store)
    url = f"/v1/jobs/{job_id}/{path}"
    res = client.get(url, headers={"Accept": refused})
    assert res.status_code == 406, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    problem = res.json()
    assert problem["errors"][0]["loc"] == ["header", "accept"]
    assert problem["errors"][0]["input"] == refused
    assert refused in problem["detail"]
    refused_q0 = client.get(url, headers={"Accept": f"{accepted[0]};q=0"})
    assert refused_q0.status_code == 406
    for accept in [*accepted, "*/*"]:
        assert client.get(url, headers={"Accept": accept}).status_code == 200, accept
    assert client.get(url, headers={"Accept": ""}).status_code == 200  # as if absent
    assert client.get(url).status_code == 200  # httpx sends */*


def test_a_finished_jobs_report_is_rendered_once_with_a_strong_etag(
    client: TestClient, store: JobStore
) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    running = client.get(f"/v1/jobs/{job_id}/report.png")
    assert running.status_code == 200 and "etag" not in running.headers
    assert running.headers["cache-control"] == "no-store"
    assert store.kept_report(job_id, "png") is None  # a running job's report is not kept

    run_to_end(store, job_id, 1)
    identity = {"Accept-Encoding": "identity"}  # a gzipped SVG's ETag is weak (compression.py)
    for fmt in ("png", "svg"):
        url = f"/v1/jobs/{job_id}/report.{fmt}"
        first = client.get(url, headers=identity)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')  # strong: no W/
        assert first.headers["cache-control"] == "private, no-cache"  # revalidated
        kept = store.kept_report(job_id, fmt)  # kept with the job, at its write counter
        assert kept is not None and kept[0] == first.content
        assert etag.startswith(f'"{kept[1]}-')
        again = client.get(url, headers=identity)
        assert (again.content, again.headers["etag"]) == (first.content, etag)
        for tag in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            res = client.get(url, headers={**identity, "If-None-Match": tag})
            assert res.status_code == 304 and res.content == b"", tag
            assert res.headers["etag"] == etag
        changed = client.get(url, headers={**identity, "If-None-Match": '"not-this-one"'})
        assert changed.status_code == 200 and changed.content == first.content
        # Through gzip (SVG): the weak tag it was given still revalidates.
        zipped = client.get(url)
        assert zipped.content == first.content
        res = client.get(url, headers={"If-None-Match": zipped.headers["etag"]})
        assert res.status_code == 304


def test_every_event_has_a_unique_id_and_resuming_before_end_gets_end(
    client: TestClient, store: JobStore
) -> None:
    job_id = finished_job(store)
    full = sse_events(client, f"/v1/jobs/{job_id}/events")
    ids = [e.id for e in full]
    assert all(ids) and len(set(ids)) == len(ids), ids
    assert [stream_pos(i) for i in ids] == sorted(stream_pos(i) for i in ids)  # increasing
    assert ids[0] == "0-0.1" and "." in ids[-2]  # derived: the snapshot, the last progress
    assert [e.event for e in full[-2:]] == ["progress", "end"]
    # A client that saw the last progress event but not "end" resumes and gets that "end".
    resumed = sse_events(client, f"/v1/jobs/{job_id}/events", **{"Last-Event-ID": ids[-2]})
    assert [e.event for e in resumed] == ["progress", "end"]
    assert resumed[-1].id == ids[-1] and data(resumed[-1]) == {"status": "succeeded"}
    # Any id resumes: the events after it are the same, the derived ones aside, and every id
    # sent comes after the one given (a derived one too: never an id the client holds).
    for resume in ids:
        after = sse_events(client, f"/v1/jobs/{job_id}/events", **{"Last-Event-ID": resume})
        assert after[-1].event == "end"
        got = [e.id for e in after]
        assert all(stream_pos(i) > stream_pos(resume) for i in got), (resume, got)
        if "." in resume:  # the first snapshot is numbered on after the derived id given
            position, _, n = resume.partition(".")
            assert got[0] == f"{position}.{int(n) + 1}"
        tail = [e.id for e in after if e.event != "progress"]
        expected = [
            e.id for e in full if e.event != "progress" and stream_pos(e.id) > stream_pos(resume)
        ]
        assert tail == expected or (not expected and tail == [after[-1].id])


def test_resuming_after_the_first_snapshot_of_a_queued_job_sends_a_new_id(
    client: TestClient, store: JobStore
) -> None:
    job_id = new_job(store)
    url = f"/v1/jobs/{job_id}/events"
    resumed: list[httpx_sse.ServerSentEvent] = []
    with httpx_sse.connect_sse(client, "GET", url) as source:
        first = next(iter(source.iter_sse()))
    assert (first.id, first.event, data(first)["status"]) == ("0-0.1", "progress", "queued")
    with httpx_sse.connect_sse(client, "GET", url, headers={"Last-Event-ID": first.id}) as source:
        for event in source.iter_sse():
            resumed.append(event)
            if len(resumed) == 1:
                store.cancel_job(job_id)  # ends the stream
    assert resumed[0].id == "0-0.2" and resumed[0].event == "progress"
    assert resumed[-1].event == "end" and data(resumed[-1]) == {"status": "cancelled"}
    assert all(stream_pos(e.id) > stream_pos(first.id) for e in resumed)


def test_progress_events_carry_eta_and_cancelled_runs_apart(
    client: TestClient, store: JobStore
) -> None:
    job_id = new_job(store)
    run_to_end(store, job_id, 0)
    claim = store.claim_run(job_id, 1, "test-worker@host", 30.0)
    assert store.update_run(job_id, 1, claim.attempt, fields={"batch": 3}) == 0
    seen: list[httpx_sse.ServerSentEvent] = []
    with httpx_sse.connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        for event in source.iter_sse():
            seen.append(event)
            if len(seen) == 1:
                first = data(event)
                assert first["status"] == "running"
                assert isinstance(first["eta_seconds"], float) and first["eta_seconds"] >= 0
                # 1 of 2 runs done, 3 of 30 batches of the other: 55 %.
                assert (first["runs_done"], first["fraction"]) == (1, 0.55)
                store.cancel_job(job_id)
    assert seen[-1].event == "end" and data(seen[-1])["status"] == "cancelled"
    last = [data(e) for e in seen if e.event == "progress"][-1]
    assert (last["runs_done"], last["runs_cancelled"], last["fraction"]) == (1, 1, 0.55)
    assert last["eta_seconds"] is None
