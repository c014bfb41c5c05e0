"""The classic experiments on real data, through the real service (issue 3).

A real uvicorn API, a real Celery worker (prefork, 2 pool processes) and the session's Redis
run the presets unchanged (full Fashion-MNIST, the Udacity protocol; the deeplearning.ai
circles assignment) and the results must have the published shape:

- ``udacity-fashion`` (repeats 1): all zeros and all ones stay at chance (< 0.2) with one
  distinct unit per hidden layer from start to end (symmetry never breaks); the general rule,
  normal and truncated normal σ=0.1 reach ≥ 0.8 after 858 batches (2 epochs).
- ``dlai-circles``: zeros 0.5 train and test accuracy; He ≥ 0.9 on the test set.

Skipped, with the reason, where Fashion-MNIST is not installed (Debian package
``dataset-fashion-mnist``); nothing is downloaded. About 45 s on 2 idle cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TERMINAL = {"succeeded", "failed", "cancelled"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UDACITY_LABELS = [
    "All Zeros",
    "All Ones",
    "Uniform [0, 1)",
    "Uniform [-1, 1)",
    "General Rule",
    "Normal Distribution",
    "Truncated Normal",
]


@pytest.fixture
def client(api_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=30) as c:
        yield c


def run_preset(client: httpx.Client, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """POST the preset, poll until the job ends, return the final job document."""
    res = client.post("/v1/jobs", json=body)
    assert res.status_code == 202, res.text
    job_id = res.json()["id"]
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = res.json()
    while doc["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job {job_id} not done in {timeout} s: {doc}"
        time.sleep(0.5)
        res = client.get(f"/v1/jobs/{job_id}")
        assert res.status_code == 200, res.text
        doc = res.json()
    assert doc["status"] == "succeeded", doc["error"]
    return doc


def fashion_mnist_installed(client: httpx.Client) -> bool:
    """True if the service finds Fashion-MNIST on disk (never counts on a download)."""
    datasets = {d["name"]: d for d in client.get("/v1/datasets").json()["datasets"]}
    fashion = datasets["fashion-mnist"]
    return bool(fashion["available"]) and fashion["where"] != "download"


def hidden_distinct_units(run: dict[str, Any]) -> dict[str, list[int]]:
    """Per diagnostics record (init, after each epoch): distinct units of each hidden layer."""
    return {
        when: [layer["distinct_units"] for layer in layers if layer["name"] != "output"]
        for when, layers in run["diagnostics"].items()
    }


def test_udacity_fashion_has_the_published_shape(
    client: httpx.Client, start_worker: Callable[..., Any]
) -> None:
    if not fashion_mnist_installed(client):
        pytest.skip(
            "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist puts it in "
            "/usr/share/datasets/fashion-mnist); this test never downloads it"
        )
    start_worker(concurrency=2)
    doc = run_preset(client, {"preset": "udacity-fashion", "repeats": 1}, timeout=600)

    summary = {s["label"]: s for s in doc["summary"]}
    assert [s["label"] for s in doc["summary"]] == UDACITY_LABELS  # request order
    acc = {label: s["final_val_accuracy"]["mean"] for label, s in summary.items()}
    for label in ("All Zeros", "All Ones"):
        assert acc[label] < 0.2, acc
    for label in ("General Rule", "Normal Distribution", "Truncated Normal"):
        assert acc[label] >= 0.8, acc
    for s in doc["summary"]:
        assert s["diverged"] == 0, s
        assert s["text"].startswith(f"{s['label']}: After 858 Batches (2 Epochs): "), s["text"]

    runs = {r["label"]: r for r in doc["runs"]}
    for label in ("All Zeros", "All Ones"):
        records = hidden_distinct_units(runs[label])
        assert {"init", "epoch_1", "epoch_2"} <= set(records), list(records)
        # Constant weights: every hidden unit computes the same thing, at start and at the end.
        assert all(units == [1, 1] for units in records.values()), (label, records)
    # A random scheme breaks the symmetry: its hidden layers have many distinct units.
    assert min(hidden_distinct_units(runs["General Rule"])["epoch_2"]) > 100
    for run in doc["runs"]:
        assert run["batch"] == 858 and len(run["epochs"]) == 2, run["label"]

    png = client.get(f"/v1/jobs/{doc['id']}/report.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_MAGIC) and len(png.content) > 10_000


def test_dlai_circles_has_the_published_shape(
    client: httpx.Client, start_worker: Callable[..., Any]
) -> None:
    start_worker(concurrency=2)
    doc = run_preset(client, {"preset": "dlai-circles"}, timeout=300)

    assert [s["label"] for s in doc["summary"]] == ["zeros", "large random", "He"]
    runs = {r["label"]: r for r in doc["runs"]}
    final = {label: run["final"] for label, run in runs.items()}
    # Published: zeros 0.50 / 0.50 (train / test), He 0.99 / 0.96.
    assert final["zeros"]["train_accuracy"] == pytest.approx(0.5)
    assert final["zeros"]["val_accuracy"] == pytest.approx(0.5)
    assert final["He"]["val_accuracy"] >= 0.9
    assert final["He"]["train_accuracy"] >= 0.9
    # Large random N(0, 100) learns, but less well than He on the test set (published 0.86).
    assert 0.5 < final["large random"]["val_accuracy"] <= final["He"]["val_accuracy"]
    for run in doc["runs"]:
        assert run["batch"] == 15_000 and not run["diverged"], run["label"]
    # Full batch: each of the 15,000 steps is an epoch (evaluated every 150, but 15,000 run).
    for s in doc["summary"]:
        assert s["text"].startswith(f"{s['label']}: After 15000 Batches (15000 Epochs): ")
