"""Specs that submission accepts run in the worker (a real uvicorn API, a real Celery worker,
real Redis); what a worker could not run is refused at submission instead.

Found by trying inputs that passed ``POST /v1/jobs`` and failed in the worker:

- a dataset given by ``{"id": "ds_..."}`` without ``name`` (the stored spec said
  ``name: null``; the worker's loader refused it): now the name ``upload`` is implied;
- an upload with a ``task`` its labels do not support (``binary`` over labels 0..2): the
  worker's loader refused them; now a 422 at ``dataset.task``;
- an upload's ``task`` turned to ``regression`` from integer labels: submission planned the
  output layer on the class count, the worker on one target, so ``model.output_units`` that
  submission accepted failed in the worker; now submission sizes it from the data;
- before the one spec: options that the trainer implements but the API refused, and a scheme
  whose every layer is overridden, are run here end to end.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration

WORKER_ENV = {"INITLAB_LEASE_SECONDS": "3", "INITLAB_WATCHDOG_INTERVAL_SECONDS": "1"}
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def client(api_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=30) as c:
        yield c


def upload(client: httpx.Client, y: np.ndarray) -> str:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.normal(size=(len(y), 3)).astype(np.float32), y_train=y)
    res = client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())})
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def small_job(dataset: dict[str, Any], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset": dataset,
        "model": {"hidden_layers": [4]},
        "training": {"optimizer": "adam", "batch_size": 16, "epochs": 2},
        "schemes": [{"label": "He", "initializer": "he_normal"}],
        "seed": 5,
    }
    body.update(over)
    return body


def run_all(client: httpx.Client, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = []
    for body in bodies:
        res = client.post("/v1/jobs", json=body)
        assert res.status_code == 202, res.text
        ids.append(res.json()["id"])
    deadline = time.monotonic() + 120
    docs: dict[str, dict[str, Any]] = {}
    while len(docs) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            doc = client.get(f"/v1/jobs/{job_id}").json()
            if doc["status"] in TERMINAL:
                docs[job_id] = doc
        time.sleep(0.3)
    assert len(docs) == len(ids), "jobs did not finish in 120 s"
    return [docs[i] for i in ids]


CIRCLES = {"name": "circles", "train_size": 64, "validation_size": 16}


def test_accepted_specs_run_in_the_worker(
    client: httpx.Client, start_worker: Callable[..., Any]
) -> None:
    labels3 = np.arange(48) % 3
    by_id = upload(client, labels3)
    regression = upload(client, labels3)
    bodies = [
        small_job({"id": by_id}),
        small_job({"id": regression, "task": "regression"}, model={"output_units": 1}),
        small_job(CIRCLES, training={"optimizer": {"name": "RMSprop", "alpha": 0.9,
                                                   "centered": True, "momentum": 0.5},
                                     "epochs": 2}),
        small_job(CIRCLES, training={"optimizer": {"name": "adamw", "lr": 0.01,
                                                   "beta1": 0.8, "beta2": 0.99},
                                     "loss": "binary_crossentropy", "batch_size": "full",
                                     "steps": 5}),
        small_job(CIRCLES, training={"optimizer": {"name": "sgd", "momentum": 0.9,
                                                   "nesterov": True}, "epochs": 1},
                  model={"hidden_layers": [4], "activation": {"name": "elu", "alpha": 0.5}}),
        small_job(CIRCLES, schemes=[{"label": "per layer", "layers": [
            {"layer": 0, "kernel_initializer": "orthogonal"},
            {"layer": 1, "kernel_initializer": "glorot_uniform"}]}]),
    ]  # fmt: skip
    start_worker(concurrency=2, env=WORKER_ENV)
    docs = run_all(client, bodies)
    for doc in docs:
        assert doc["status"] == "succeeded", (doc["spec"], [r["error"] for r in doc["runs"]])
    assert docs[0]["spec"]["dataset"]["name"] == "upload"
    assert docs[1]["spec"]["dataset_info"]["n_outputs"] == 1
    assert docs[3]["runs"][0]["batch"] == 5


def test_an_upload_task_its_labels_do_not_fit_is_a_422(client: httpx.Client) -> None:
    dataset_id = upload(client, np.arange(48) % 3)
    res = client.post("/v1/jobs", json=small_job({"id": dataset_id, "task": "binary"}))
    assert res.status_code == 422, res.text
    errors = res.json()["errors"]
    assert errors[0]["loc"] == ["dataset", "task"] and errors[0]["input"] == "binary"
    assert "0 or 1" in res.json()["detail"]
    res = client.post(
        "/v1/jobs",
        json=small_job({"id": dataset_id, "task": "regression"}, model={"output_units": 3}),
    )
    assert res.status_code == 422, res.text
    assert res.json()["errors"][0]["loc"] == ["model", "output_units"]
