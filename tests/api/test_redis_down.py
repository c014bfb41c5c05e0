"""Redis gone: every route that needs it answers 503 problem+json with ``Retry-After``, never
a 500, never Redis' address; the client's keep-alive connection survives; Redis back → 200.

A real uvicorn on its own embedded ``redis-server`` (``app.embedded_redis``), stopped and
started again by the test (with its append-only file, so the records come back with it).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.embedded_redis import EmbeddedRedis
from app.jobs.reporter import RedisRunReporter
from app.jobs.store import JobStore, redis_client

pytestmark = pytest.mark.integration

JOB = {
    "dataset": {"name": "circles", "train_size": 64, "validation_size": 16},
    "model": {"hidden_layers": [4]},
    "training": {"epochs": 1},
    "schemes": [{"initializer": "he_normal"}],
}


def finished_job(url: str) -> str:
    """A job with one finished run, written as a worker writes it."""
    client = redis_client(url)
    store = JobStore(client, ttl_seconds=3600)
    # As a stored spec is: every scheme labelled (the job summary names it).
    schemes = [{"label": "zeros", "initializer": "zeros"}]
    spec = {"dataset": {"name": "circles"}, "schemes": schemes, "seed": 0}
    runs = [{"scheme": 0, "label": "zeros", "repeat": 0, "seed": 0, "total_batches": 2}]
    job_id = str(store.create_job(spec, runs)["id"])
    claim = store.claim_run(job_id, 0, "test-worker@host", 30.0)
    reporter = RedisRunReporter(
        store, job_id, 0, claim.attempt, total_batches=2, plot_n_batches=2, max_batch_points=2
    )
    reporter.on_batch(1, 0, 0.7)
    reporter.on_batch(1, 1, 0.6)
    record = {"epoch": 1, "train_loss": 0.6, "train_accuracy": 0.5, "val_loss": 0.6}
    reporter.on_epoch({**record, "val_accuracy": 0.5, "seconds": 0.01})
    final = {"train_loss": 0.6, "train_accuracy": 0.5, "val_loss": 0.6, "val_accuracy": 0.5}
    reporter.finish("succeeded", final=final, seconds=0.01)
    client.close()
    return job_id


def npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x_train=np.zeros((8, 2), np.float32), y_train=np.arange(8) % 2)
    return buf.getvalue()


def requests(job_id: str, dataset_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that reads or writes Redis: (method, url, httpx keyword arguments)."""
    job = f"/v1/jobs/{job_id}"
    return [
        ("GET", "/readyz", {}),
        ("GET", "/v1/jobs", {}),
        ("GET", job, {}),
        ("GET", f"{job}/events", {}),
        ("GET", f"{job}/report.png", {}),
        ("GET", f"{job}/report.svg", {}),
        ("GET", f"{job}/results.csv", {}),
        ("HEAD", f"{job}/results.csv", {}),
        ("DELETE", job, {}),
        ("POST", "/v1/jobs", {"json": JOB}),
        ("GET", "/v1/datasets", {}),
        ("GET", f"/v1/datasets/{dataset_id}", {}),
        ("DELETE", f"/v1/datasets/{dataset_id}", {}),
        ("POST", "/v1/datasets", {"files": {"file": ("x.npz", npz())}}),
    ]


def local_port(res: httpx.Response) -> int:
    """The client side's port of the connection that carried ``res``."""
    port: int = res.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


def test_redis_gone_is_503_on_one_keepalive_connection_then_200(
    tmp_path: Path, start_api: Callable[..., Any]
) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis", persistent=True).start()
    try:
        api = start_api(env={"INITLAB_REDIS_URL": redis_server.url})
        job_id = finished_job(redis_server.url)
        with httpx.Client(base_url=api.url, timeout=30) as client:
            up = client.post("/v1/datasets", files={"file": ("d.npz", npz())})
            assert up.status_code == 201, up.text
            dataset_id = up.json()["id"]
            port = local_port(client.get("/healthz"))

            redis_server.stop()
            for method, url, kwargs in requests(job_id, dataset_id):
                res = client.request(method, url, **kwargs)
                what = f"{method} {url}: {res.status_code} {res.text[:300]}"
                assert res.status_code == 503, what
                assert res.headers["content-type"].startswith("application/problem+json"), what
                assert int(res.headers["retry-after"]) > 0, what
                assert "127.0.0.1" not in res.text and str(redis_server.port) not in res.text
                if method != "HEAD":
                    assert res.json()["status"] == 503 and res.json()["detail"], what
                assert local_port(res) == port, f"{what}: a new connection"
            # What needs no Redis is served as ever.
            assert client.get("/v1/tensors?shape=2&seed=1").status_code == 200

            redis_server.start()
            for url in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/results.csv", "/v1/datasets"):
                res = client.get(url)
                assert res.status_code == 200, f"{url}: {res.text[:300]}"
                assert local_port(res) == port
            assert client.get(f"/v1/datasets/{dataset_id}").status_code == 200
    finally:
        redis_server.stop()
