"""Uploads, quotas and idempotent submission against real uvicorn API processes on real Redis
(memory per upload, quotas and one Idempotency-Key across two API processes, an API killed
mid-submission).

Memory is read from the API process itself (``tests.process_memory.growth_bytes``: its peak RSS
reset before a request), a memory bound, not a timing one.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from tests.process_memory import growth_bytes

MiB = 1 << 20
# Lowered for these tests so the crafted x_train (deflated zeros) is quick to build; the
# bench (bench/upload_memory.py) runs the default 200M-element limit with a 35 MiB file.
MAX_ELEMENTS = 20_000_000
# A one-run job (nothing runs it here: the tests cancel what they submit).
JOB: dict[str, Any] = {
    "dataset": {"name": "circles", "train_size": 32, "validation_size": 8},
    "model": {"hidden_layers": [4]},
    "training": {"epochs": 1},
    "schemes": [{"label": "He", "initializer": "he_normal"}],
    "repeats": 1,
}


def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def crafted_npz(declared_elements: int, val_bytes: int) -> bytes:
    """The issue's file: an ``x_train`` of deflated zeros whose header declares
    ``declared_elements`` float32 values, beside ``val_bytes`` of stored random ``x_val`` so
    the archive's overall compression ratio looks harmless."""
    d = 100
    rows = declared_elements // d + 1
    val_rows = val_bytes // (4 * d)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x_train.npy", "w", force_zip64=True) as fp:
            fp.write(_npy_header("<f4", (rows, d)))
            zeros, left = bytes(4 * MiB), rows * d * 4
            while left:
                fp.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
        zf.writestr("y_train.npy", _npy(np.zeros(rows, np.int8)))
        x_val = np.random.default_rng(0).random((val_rows, d), dtype=np.float32)
        zf.writestr("x_val.npy", _npy(x_val), compress_type=zipfile.ZIP_STORED)
        zf.writestr("y_val.npy", _npy(np.zeros(val_rows, np.int8)))
    return buf.getvalue()


def compressible_npz(rows: int) -> bytes:
    """A valid upload that inflates about 10x: float32 features of a few distinct values."""
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        x_train=rng.integers(0, 4, (rows, 64)).astype(np.float32),
        y_train=rng.integers(0, 10, rows),
    )
    return buf.getvalue()


def post_npz(url: str, data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/datasets",
        content=data,
        headers={"content-type": "application/octet-stream", **(headers or {})},
        timeout=120,
    )


def test_a_crafted_npz_is_refused_by_its_header_without_inflating(start_api: Callable) -> None:
    api = start_api(env={"INITLAB_MAX_DATASET_ELEMENTS": str(MAX_ELEMENTS)})
    data = crafted_npz(MAX_ELEMENTS + 1, 33 * MiB)
    assert 30 * MiB < len(data) < 40 * MiB
    res, grew = growth_bytes(api.pid, lambda: post_npz(api.url, data))
    assert res.status_code == 413, res.text
    error = res.json()["errors"][0]
    assert error["loc"] == ["body", "x_train"]
    assert str(MAX_ELEMENTS) in error["msg"] and "INITLAB_MAX_DATASET_ELEMENTS" in error["msg"]
    # Inflating x_train alone would take 80 MB, casting and checking it as much again.
    assert grew <= 3 * len(data), (
        f"grew {grew / MiB:.0f} MiB for a {len(data) / MiB:.0f} MiB upload"
    )


def test_a_compressible_upload_is_validated_a_chunk_at_a_time(start_api: Callable) -> None:
    api = start_api()
    data = compressible_npz(400_000)  # 102 MB of float32 features inflated
    assert len(data) * 5 < 400_000 * 64 * 4
    res, grew = growth_bytes(api.pid, lambda: post_npz(api.url, data))
    assert res.status_code == 201, res.text
    assert (res.json()["n_train"], res.json()["input_dim"], res.json()["n_classes"]) == (
        400_000,
        64,
        10,
    )
    # The upload itself (received, then kept as bytes) and a few 4 MiB chunks.
    assert grew <= 3 * len(data) + 32 * MiB, f"grew {grew / MiB:.0f} MiB, upload {len(data)}"
    assert httpx.delete(f"{api.url}/v1/datasets/{res.json()['id']}").status_code == 204


def test_concurrent_uploads_wait_for_the_processs_upload_slots(start_api: Callable) -> None:
    api = start_api(
        env={
            "INITLAB_MAX_DATASET_ELEMENTS": str(MAX_ELEMENTS),
            "INITLAB_MAX_CONCURRENT_UPLOADS": "1",
        }
    )
    data = crafted_npz(MAX_ELEMENTS + 1, 33 * MiB)

    def three_at_once() -> list[httpx.Response]:
        out: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda: out.append(post_npz(api.url, data))) for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    responses, grew = growth_bytes(api.pid, three_at_once)
    assert [r.status_code for r in responses] == [413, 413, 413]
    # One upload in memory at a time: the others wait, their bodies unread.
    assert grew <= 3 * len(data), f"grew {grew / MiB:.0f} MiB for three {len(data)} B uploads"


def _small_npz(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.normal(size=(16, 2)), y_train=rng.integers(0, 2, 16))
    return buf.getvalue()


def _fire(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls at once (a barrier releases them together); responses in call order."""
    out: list[httpx.Response | None] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


@pytest.fixture
def two_apis(start_api: Callable) -> tuple[Any, Any, dict[str, str]]:
    key = "proc-" + uuid.uuid4().hex
    env = {
        "INITLAB_API_KEYS": key,
        "INITLAB_MAX_UPLOADS_PER_CALLER": "3",
        "INITLAB_MAX_QUEUED_RUNS_PER_CALLER": "64",
    }
    return start_api(env=env), start_api(env=env), {"X-API-Key": key}


def test_the_upload_quota_holds_across_two_api_processes(two_apis: Any) -> None:
    a, b, auth = two_apis
    calls = [
        (lambda url=(a if i % 2 else b).url, i=i: post_npz(url, _small_npz(i), auth))
        for i in range(8)
    ]
    statuses = sorted(r.status_code for r in _fire(calls))
    assert statuses == [201] * 3 + [429] * 5
    listing = httpx.get(f"{a.url}/v1/datasets", headers=auth).json()["datasets"]
    assert len([d for d in listing if d.get("kind") == "upload"]) == 3


def test_one_idempotency_key_on_two_api_processes_makes_one_job(two_apis: Any) -> None:
    a, b, auth = two_apis
    body = {**JOB, "seed": 3}
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}

    def submit(url: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/jobs", json=body, headers=headers, timeout=30)

    first = _fire([lambda: submit(a.url), lambda: submit(b.url)] * 3)
    # Each is the job (202) or, while the first request is in flight, a 409.
    assert {r.status_code for r in first} <= {202, 409} and 202 in {r.status_code for r in first}
    ids = {r.json()["id"] for r in first if r.status_code == 202}
    retry_a, retry_b = submit(a.url), submit(b.url)
    assert retry_a.status_code == retry_b.status_code == 202
    assert ids == {retry_a.json()["id"]} == {retry_b.json()["id"]}
    jobs = httpx.get(f"{b.url}/v1/jobs", headers=auth).json()["jobs"]
    assert [j["id"] for j in jobs] == [retry_a.json()["id"]]
    httpx.delete(f"{a.url}/v1/jobs/{retry_a.json()['id']}", headers=auth)


class FreezingRedisProxy:
    """A TCP proxy to Redis that freezes a client at a chosen command: once the client sends
    bytes containing ``trigger`` nothing more reaches it (``forward``: the triggering command
    still reaches Redis, so it is executed; else it is dropped). The test then kills the
    frozen process: a crash at exactly that point of the request."""

    def __init__(self, upstream_port: int, trigger: bytes, *, forward: bool) -> None:
        import socket

        self.upstream_port = upstream_port
        self.trigger = trigger
        self.forward = forward
        self.triggered = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[Any] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: Any, dst: Any, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and not self.triggered.is_set() and self.trigger in data:
                    self.triggered.set()
                    if not self.forward:
                        continue
                if not from_client and self.triggered.is_set():
                    continue  # the frozen client never hears back
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


@pytest.mark.parametrize("recorded", [True, False], ids=["after-recording", "before-recording"])
def test_an_api_killed_mid_request_leaves_one_job_for_the_retry(
    start_api: Callable, redis_url: str, redis_client: Any, recorded: bool
) -> None:
    from urllib.parse import urlsplit

    from app.api.auth import caller_id

    key = "crash-" + uuid.uuid4().hex
    parts = urlsplit(redis_url)
    # create_job's transaction is the only command of a submission that names runs_failed.
    proxy = FreezingRedisProxy(parts.port or 6379, b"runs_failed", forward=recorded)
    try:
        proxied = f"redis://127.0.0.1:{proxy.port}{parts.path}"
        a = start_api(env={"INITLAB_API_KEYS": key, "INITLAB_REDIS_URL": proxied})
        b = start_api(env={"INITLAB_API_KEYS": key})
        auth = {"X-API-Key": key}
        headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
        body = {**JOB, "seed": 5}
        outcome: list[Any] = []

        def first_request() -> None:
            try:
                outcome.append(
                    httpx.post(f"{a.url}/v1/jobs", json=body, headers=headers, timeout=60)
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=first_request)
        thread.start()
        assert proxy.triggered.wait(30), "the submission never reached create_job"
        owner_jobs = f"initlab:owner:{caller_id(key)}:jobs"
        if recorded:  # wait until Redis has executed the transaction, then crash
            for _ in range(300):
                if redis_client.zcard(owner_jobs):
                    break
                time.sleep(0.05)
        a.kill9()
        thread.join(30)
        assert isinstance(outcome[0], httpx.HTTPError)  # the client got a connection error
        assert redis_client.zcard(owner_jobs) == (1 if recorded else 0)

        retry = httpx.post(f"{b.url}/v1/jobs", json=body, headers=headers, timeout=30)
        if not recorded:
            # The reservation of the dead process is live for its lease: 409, then (lease
            # lapsed, here by hand) the retry records the job.
            assert retry.status_code == 409, retry.text
            [name] = redis_client.keys(f"initlab:owner:{caller_id(key)}:idempotency:*")
            redis_client.hset(name, "lease_until", 0)
            retry = httpx.post(f"{b.url}/v1/jobs", json=body, headers=headers, timeout=30)
        assert retry.status_code == 202, retry.text
        assert (retry.headers.get("idempotent-replayed") == "true") is recorded
        again = httpx.post(f"{b.url}/v1/jobs", json=body, headers=headers, timeout=30)
        assert again.json()["id"] == retry.json()["id"]
        jobs = httpx.get(f"{b.url}/v1/jobs", headers=auth).json()["jobs"]
        assert [j["id"] for j in jobs] == [retry.json()["id"]]
        httpx.delete(f"{b.url}/v1/jobs/{retry.json()['id']}", headers=auth)
    finally:
        proxy.close()


def test_the_run_quota_holds_across_two_api_processes(start_api: Callable) -> None:
    key = "runs-" + uuid.uuid4().hex
    env = {"INITLAB_API_KEYS": key, "INITLAB_MAX_QUEUED_RUNS_PER_CALLER": "3"}
    a, b, auth = start_api(env=env), start_api(env=env), {"X-API-Key": key}
    body = JOB  # no seed: each submission draws its own, so none is a duplicate
    calls = [
        (lambda url=(a if i % 2 else b).url: httpx.post(f"{url}/v1/jobs", json=body, headers=auth))
        for i in range(6)
    ]
    responses = _fire(calls)
    assert sorted(r.status_code for r in responses) == [202] * 3 + [429] * 3
    refused = next(r for r in responses if r.status_code == 429).json()
    assert refused["errors"][0]["loc"] == ["quota", "max_queued_runs_per_caller"]
    jobs = httpx.get(f"{a.url}/v1/jobs", headers=auth).json()["jobs"]
    assert len(jobs) == 3
    for job in jobs:
        httpx.delete(f"{a.url}/v1/jobs/{job['id']}", headers=auth)


def test_a_task_override_is_checked_without_reading_the_upload_again(start_api: Callable) -> None:
    # Whether an upload's labels fit each task is found when it is uploaded and kept with it:
    # jobs that override its task are checked against that, never by reading the data (eight
    # at once used to hold eight copies in the API).
    api = start_api()
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    x = rng.normal(size=(400_000, 10)).astype(np.float32)  # 16 MB, incompressible
    np.savez(buf, x_train=x, y_train=rng.integers(0, 3, 400_000))
    data = buf.getvalue()
    upload = post_npz(api.url, data)
    assert upload.status_code == 201, upload.text
    tasks = upload.json()["tasks"]
    assert tasks["multiclass"] == {"n_outputs": 3} and tasks["regression"] == {"n_outputs": 1}
    assert "binary labels must be 0 or 1" in tasks["binary"]["error"]["msg"]

    def submit(task: str) -> Callable[[], httpx.Response]:
        dataset = {"name": "upload", "id": upload.json()["id"], "task": task}
        body = {**JOB, "dataset": dataset, "model": {"hidden_layers": [2]}}
        return lambda: httpx.post(f"{api.url}/v1/jobs", json=body, timeout=120)

    responses, grew = growth_bytes(api.pid, lambda: _fire([submit("regression")] * 8))
    assert [r.status_code for r in responses] == [202] * 8, [r.text for r in responses]
    for r in responses:
        httpx.delete(f"{api.url}/v1/jobs/{r.json()['id']}")
    assert grew <= len(data), f"grew {grew / MiB:.0f} MiB for 8 submissions"
    refused = submit("binary")()
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"] == ["dataset", "task"]


def _slow_upload(url: str, seconds: float) -> bytes:
    """A raw-socket client announcing a 100 kB upload and sending a byte every 0.2 s for at
    most ``seconds``; returns what the server answered (b"" if nothing)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=seconds) as sock:
        sock.sendall(
            b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
        )
        sock.setblocking(False)
        answer = b""
        end = time.monotonic() + seconds
        while time.monotonic() < end and b"\r\n\r\n" not in answer:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                sock.send(b"\0")
            time.sleep(0.2)
        sock.settimeout(2)
        with contextlib.suppress(OSError):  # the rest of the problem document, then close
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


def test_a_slow_upload_is_a_408_and_frees_its_slot(start_api: Callable) -> None:
    api = start_api(
        env={
            "INITLAB_MAX_CONCURRENT_UPLOADS": "1",
            "INITLAB_UPLOAD_BODY_SECONDS": "1",
            "INITLAB_UPLOAD_MIN_BYTES_PER_SECOND": "1000",
        }
    )
    answer = _slow_upload(api.url, seconds=8)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"content-type: application/problem+json" in head.lower()
    assert b"connection: close" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 408 and problem["errors"][0]["loc"] == ["body"]
    assert "INITLAB_UPLOAD_BODY_SECONDS" in problem["detail"]
    # The one slot is free again: the next upload is served at once, not after 10 s with a 503.
    res = post_npz(api.url, _small_npz(0))
    assert res.status_code == 201, res.text
    assert httpx.delete(f"{api.url}/v1/datasets/{res.json()['id']}").status_code == 204
