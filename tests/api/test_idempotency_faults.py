"""A submission whose job was recorded although the request then failed (Redis dropped the
connection after executing the transaction) must not become two jobs when the client retries
with its ``Idempotency-Key``: a real uvicorn behind a TCP proxy to the real Redis."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.api.auth import caller_id

JOB = {
    "dataset": {"name": "circles", "train_size": 64, "validation_size": 16},
    "model": {"hidden_layers": [4]},
    "training": {"epochs": 1, "batch_size": 32},
    "schemes": [{"label": "He", "initializer": "he_normal"}],
}


class ReplyDroppingProxy:
    """A TCP proxy to Redis. The first command containing ``trigger`` reaches Redis (so it is
    executed), but its reply does not reach the client: that connection is closed instead.
    Later commands containing ``trigger`` (a client's retries) are dropped the same way without
    reaching Redis. Every other command passes both ways."""

    def __init__(self, upstream_port: int, trigger: bytes) -> None:
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.executed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            severed = threading.Event()
            threading.Thread(
                target=self._from_client, args=(client, upstream, severed), daemon=True
            ).start()
            threading.Thread(
                target=self._to_client, args=(upstream, client, severed), daemon=True
            ).start()

    def _from_client(self, client: socket.socket, upstream: socket.socket, severed: Any) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.trigger in data:
                    if not self.executed.is_set():
                        self.executed.set()
                        upstream.sendall(data)  # executed by Redis; its reply is not sent
                    severed.set()
                    continue
                upstream.sendall(data)

    def _to_client(self, upstream: socket.socket, client: socket.socket, severed: Any) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if severed.is_set():
                    client.shutdown(socket.SHUT_RDWR)  # the connection drops before the reply
                    client.close()
                    upstream.close()
                    return
                client.sendall(data)
        with contextlib.suppress(OSError):
            if severed.is_set():
                client.close()

    def close(self) -> None:
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


def test_a_job_recorded_before_the_request_failed_is_replayed_not_doubled(
    start_api: Callable, redis_url: str, redis_client: Any
) -> None:
    key = "fault-" + uuid.uuid4().hex
    parts = urlsplit(redis_url)
    # create_job's transaction is the only command of a submission that names runs_failed.
    proxy = ReplyDroppingProxy(parts.port or 6379, b"runs_failed")
    try:
        proxied = f"redis://127.0.0.1:{proxy.port}{parts.path}"
        a = start_api(env={"INITLAB_API_KEYS": key, "INITLAB_REDIS_URL": proxied})
        b = start_api(env={"INITLAB_API_KEYS": key})
        auth = {"X-API-Key": key}
        headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
        body = {**JOB, "seed": 11}

        first = httpx.post(f"{a.url}/v1/jobs", json=body, headers=headers, timeout=120)
        assert proxy.executed.is_set()
        assert first.status_code == 503, first.text  # the client saw the request fail ...
        owner_jobs = f"initlab:owner:{caller_id(key)}:jobs"
        assert redis_client.zcard(owner_jobs) == 1  # ... though its job was recorded

        retry = httpx.post(f"{b.url}/v1/jobs", json=body, headers=headers, timeout=30)
        assert retry.status_code == 202, retry.text
        assert retry.headers.get("idempotent-replayed") == "true"
        jobs = httpx.get(f"{b.url}/v1/jobs", headers=auth).json()["jobs"]
        assert [j["id"] for j in jobs] == [retry.json()["id"]]
        # The recorded job's runs still count against the caller's run quota.
        active = redis_client.zrange(f"initlab:owner:{caller_id(key)}:active", 0, -1)
        assert [m.decode() for m in active] == [f"{retry.json()['id']}:1"]
        httpx.delete(f"{b.url}/v1/jobs/{retry.json()['id']}", headers=auth)
    finally:
        proxy.close()
