"""A server that is down or broken: connection refused raises ServerDownError after the
bounded retries of an idempotent call; a call that is not idempotent is sent once; a server
whose Redis is gone answers 503, raised as a ProblemError. The CLI's exit codes for both."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from client_helpers import Listener, run_cli

from app.client import Client, ProblemError, RetryPolicy, ServerDownError
from app.client.exit_codes import ExitCode
from app.embedded_redis import free_port

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02)


def _hang_up(conn: socket.socket) -> None:
    """Read the request, answer nothing, close: the client sees the connection dropped."""
    with contextlib.suppress(OSError):
        conn.recv(65536)
    conn.close()


@pytest.fixture
def hangup() -> Iterator[Listener]:
    server = Listener(_hang_up)
    try:
        yield server
    finally:
        server.close()


def test_connection_refused_raises_server_down_after_the_bounded_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retry=FAST) as client, pytest.raises(ServerDownError) as caught:
        client.jobs.get("job_x")
    assert caught.value.attempts == 3
    assert caught.value.url == url
    assert isinstance(caught.value.cause, httpx.ConnectError)
    assert url in str(caught.value)


@pytest.mark.parametrize(
    ("call", "tries"),
    [
        (lambda c: c.jobs.get("job_x"), 3),  # GET: idempotent
        (lambda c: c.tensors.get([2, 2], "zeros", seed=1), 3),
        (lambda c: c.jobs.submit(preset="dlai-circles"), 3),  # POST with an Idempotency-Key
        (lambda c: list(c.jobs.events("job_x")), 3),  # the stream's connection
        (lambda c: c.jobs.cancel("job_x"), 1),  # DELETE: sent once
        (lambda c: c.datasets.upload(b"npz bytes"), 1),  # POST without a key: sent once
        (lambda c: c.models.create({"input_shape": [2], "layers": []}), 1),
    ],
)
def test_only_idempotent_calls_are_retried(
    hangup: Listener, call: Callable[[Client], Any], tries: int
) -> None:
    with Client(hangup.url, retry=FAST) as client, pytest.raises(ServerDownError) as caught:
        call(client)
    assert caught.value.attempts == tries
    assert hangup.connections == tries


def test_the_cli_exits_4_when_the_server_is_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_cli(url, "jobs", "list")
    assert done.returncode == ExitCode.SERVER_DOWN == 4
    assert f"{url} is not answering (4 attempts)" in done.stderr
    done = run_cli("http://unused.invalid", "initializers", "--url", url, "--json")
    assert done.returncode == 4
    assert '"attempts": 4' in done.stderr and done.stdout == ""


@pytest.mark.integration
def test_a_server_without_redis_is_a_503_problem_and_cli_exit_5(
    start_api: Callable[..., Any],
) -> None:
    server = start_api(env={"INITLAB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with Client(server.url, retry=FAST) as client:
        with pytest.raises(ProblemError) as caught:
            client.jobs.list()
        assert caught.value.status == 503
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        # Tensors need no Redis: still served.
        assert client.tensors.get([2, 3], "ones", seed=1).array.sum() == 6
    done = run_cli(server.url, "jobs", "list")
    assert done.returncode == ExitCode.SERVER_ERROR == 5
    assert "503" in done.stderr
