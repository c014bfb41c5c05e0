"""``HEAD`` on every ``GET`` route of a real uvicorn: the GET's status and headers, no body.

The walk takes its routes from the application itself, so a new GET route is covered (or
fails here for want of path parameters) without editing this file. The job it reads is
written the way a worker writes one (``JobStore`` claims, ``RedisRunReporter`` reports).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi.routing import iter_route_contexts

from app.config import Settings
from app.jobs.reporter import RedisRunReporter
from app.jobs.store import JobStore, redis_client
from app.main import create_app

TENSOR = "/v1/tensors?shape=3,3&initializer=he_normal&seed=1"
# Headers that may differ between two answers to the same request (Content-Length is compared
# on its own), and the framing uvicorn adds to a streamed GET body (a HEAD has none to frame).
VOLATILE = {"date", "content-length", "transfer-encoding"}


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis_client(redis_url)
    yield JobStore(client, ttl_seconds=3600)
    client.close()


def new_job(store: JobStore, *, finish: bool) -> str:
    # As a stored spec is: every scheme labelled (the job summary names it).
    schemes = [{"label": "zeros", "initializer": "zeros"}]
    spec = {"dataset": {"name": "circles"}, "schemes": schemes, "seed": 0}
    runs = [{"scheme": 0, "label": "zeros", "repeat": 0, "seed": 0, "total_batches": 4}]
    job_id = str(store.create_job(spec, runs)["id"])
    if finish:
        claim = store.claim_run(job_id, 0, "test-worker@host", 30.0)
        assert claim.ok, claim.state
        reporter = RedisRunReporter(
            store, job_id, 0, claim.attempt, total_batches=4, plot_n_batches=4, max_batch_points=4
        )
        for batch in range(4):
            reporter.on_batch(1, batch, 1.0 / (1 + batch))
        record = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.6, "val_loss": 0.6}
        reporter.on_epoch({**record, "val_accuracy": 0.55, "seconds": 0.01})
        final = {"train_loss": 0.5, "train_accuracy": 0.6, "val_loss": 0.6, "val_accuracy": 0.55}
        assert reporter.finish("succeeded", final=final, seconds=0.02) == "succeeded"
    return job_id


def upload(client: httpx.Client) -> str:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x_train=rng.random((16, 3), np.float32), y_train=np.arange(16) % 2)
    res = client.post("/v1/datasets", files={"file": ("tiny.npz", buf.getvalue())})
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def new_model(client: httpx.Client) -> str:
    body = {"input_shape": [3], "layers": [{"type": "dense", "units": 2}], "seed": 1}
    res = client.post("/v1/models", json=body)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def get_urls(job_id: str, dataset_id: str, model_id: str) -> list[str]:
    """One URL per GET route of the application (every ``{param}`` filled in)."""
    values = {
        "job_id": job_id,
        "dataset_id": dataset_id,
        "model_id": model_id,
        "name": "dlai-circles",
        "fmt": "svg",
        "asset": "js/main.js",
        "index": "1",
        "count": "1",
    }
    urls = []
    for route in iter_route_contexts(create_app(Settings()).routes):
        if "GET" not in (route.methods or ()):
            continue
        path = str(route.path)
        if path.startswith("/v1/initializers/"):
            path = path.replace("{name}", "he_normal")
        url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: values[m.group(1)], path)
        urls.append(TENSOR if url == "/v1/tensors" else url)
    urls.append(f"/v1/jobs/{job_id}/report.png")
    urls.append(f"/v1/jobs/{job_id}/results.csv?kind=summary")
    urls.append("/v1/jobs/job_000000000000000000000000")  # a 404 is HEAD-able too
    return urls


def comparable(res: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in res.headers.items() if k not in VOLATILE}


def test_head_answers_every_get_route_like_get(api_server: str, store: JobStore) -> None:
    job_id = new_job(store, finish=True)
    with httpx.Client(base_url=api_server, timeout=30) as client:
        urls = get_urls(job_id, upload(client), new_model(client))
        assert len(urls) >= 20, urls
        for accept_encoding in ("identity", "gzip"):
            headers = {"Accept-Encoding": accept_encoding}
            for url in urls:
                get = client.get(url, headers=headers)
                head = client.head(url, headers=headers)
                assert head.status_code == get.status_code, url
                assert head.content == b"", url
                assert comparable(head) == comparable(get), url
                if url != "/metrics":  # its counters move between the two requests
                    sent = get.headers.get("content-length")
                    assert head.headers.get("content-length") == sent, url
                    if sent is not None and "content-encoding" not in get.headers:
                        assert int(sent) == len(get.content), url


def test_head_honours_etag_and_if_none_match(api_server: str) -> None:
    with httpx.Client(base_url=api_server, timeout=30) as client:
        etag = client.head(TENSOR).headers["etag"]
        assert etag == client.get(TENSOR).headers["etag"]
        res = client.head(TENSOR, headers={"If-None-Match": etag})
        assert res.status_code == 304 and res.content == b""
        assert res.headers["etag"] == etag


def test_head_on_a_live_event_stream_ends_at_its_headers(api_server: str, store: JobStore) -> None:
    job_id = new_job(store, finish=False)  # queued: its GET stream would never end
    with httpx.Client(base_url=api_server, timeout=10) as client:
        res = client.head(f"/v1/jobs/{job_id}/events")
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        assert res.content == b""
        # The connection is still good for the next request.
        assert client.get("/healthz").status_code == 200


def test_head_on_a_route_without_get_is_405_listing_the_methods(api_server: str) -> None:
    res = httpx.head(f"{api_server}/v1/datasets", timeout=10)  # GET exists: fine
    assert res.status_code == 200
    res = httpx.request("PATCH", f"{api_server}/v1/jobs/job_000000000000000000000000")
    assert res.status_code == 405
    assert res.headers["allow"] == "DELETE, GET, HEAD"
    assert res.headers["content-type"].startswith("application/problem+json")
