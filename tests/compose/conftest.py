"""The compose stack under podman: docker-compose.yml + compose.test.yml, built and run by
podman-compose as root (``make compose-test``; not part of ``make test``: marker ``compose``).

``stack`` (session scope) builds the stand-in base images and the production image, starts
redis + api + two workers, waits until every container's healthcheck passes (podman 4.3 has
no timer for them and ignores ``condition: service_healthy``, so :meth:`Stack.healthy` runs
``podman healthcheck run`` itself) and ``/readyz`` answers, and always takes the stack down
(volumes too) at the end. ``results`` collects the figures a test measured; they are written
to ``STATE/results.json`` and printed at the end of the session.

Where podman cannot run (not root, podman / runc / debootstrap / podman-compose missing) the
tests skip with the reason, except under ``CI=true``, where they fail: CI installs them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.compose import podman

API = "http://127.0.0.1:18480"
# Generous bounds (seconds): a safety net against a hung stack, never a speed assertion.
BUILD_TIMEOUT = 900
HEALTHY_TIMEOUT = 180


def _require_podman() -> None:
    reason = podman.missing()
    if not reason:
        return
    if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
        pytest.fail(f"the compose tests must run under CI=true, but {reason} (see .ci/run)")
    pytest.skip(reason)


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` every 0.5 s until it returns something truthy (then return it)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (httpx.HTTPError, RuntimeError) as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class Stack:
    """The running compose project: its containers, their healthchecks, the API."""

    def __init__(self) -> None:
        self.api = httpx.Client(base_url=API, timeout=30)

    def containers(self, service: str, *, all_states: bool = False) -> list[str]:
        """Names of ``service``'s containers (running ones unless ``all_states``), sorted."""
        out = podman.podman(
            "ps",
            *(["--all"] if all_states else []),
            "--filter",
            f"label=io.podman.compose.project={podman.PROJECT}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        )
        return sorted(out.split())

    def healthy(self, name: str) -> bool:
        """One ``podman healthcheck run``: True when the container's check passes."""
        out = podman.podman("healthcheck", "run", name, check=False, timeout=60)
        return out.strip() in ("", "healthy")

    def wait_healthy(self, names: list[str], timeout: float = HEALTHY_TIMEOUT) -> None:
        for name in names:
            wait_until(lambda name=name: self.healthy(name), timeout, f"{name} healthy")

    def ready(self, workers: int) -> bool:
        res = self.api.get("/readyz")
        return res.status_code == 200 and len(res.json().get("workers") or []) >= workers

    def wait_ready(self, workers: int, timeout: float = HEALTHY_TIMEOUT) -> dict[str, Any]:
        wait_until(lambda: self.ready(workers), timeout, f"/readyz with {workers} workers")
        body: dict[str, Any] = self.api.get("/readyz").json()
        return body

    def hostname(self, name: str) -> str:
        """The Celery hostname of a worker container (``celery@`` + its hostname)."""
        return (
            "celery@" + podman.podman("inspect", "--format", "{{.Config.Hostname}}", name).strip()
        )

    def scale_workers(self, count: int) -> list[str]:
        """``up -d --scale worker=count`` (starts what is missing); the running workers."""
        podman.compose("up", "-d", "--no-build", "--scale", f"worker={count}")
        names = wait_until(
            lambda: len(self.containers("worker")) >= count and self.containers("worker"),
            HEALTHY_TIMEOUT,
            f"{count} workers",
        )
        self.wait_healthy(names)
        self.wait_ready(count)
        return list(names)

    def logs(self) -> str:
        return podman.compose("logs", "--tail", "200", timeout=120, check=False)


@pytest.fixture(scope="session")
def results() -> Iterator[dict[str, Any]]:
    figures: dict[str, Any] = {}
    yield figures
    if figures:
        podman.STATE.mkdir(parents=True, exist_ok=True)
        (podman.STATE / "results.json").write_text(json.dumps(figures, indent=2) + "\n")
        print("\ncompose test figures:", json.dumps(figures, indent=2))


@pytest.fixture(scope="session")
def stack(results: dict[str, Any]) -> Iterator[Stack]:
    _require_podman()
    start = time.monotonic()
    results["standins_seconds"] = podman.standin_images()
    # A clean slate: containers and volumes of an earlier, interrupted session go.
    podman.down(volumes=True)
    build_start = time.monotonic()
    podman.build(BUILD_TIMEOUT)
    results["build_seconds"] = round(time.monotonic() - build_start, 1)
    stack = Stack()
    try:
        podman.compose("up", "-d", "--no-build", "--scale", "worker=2")
        stack.wait_healthy(stack.containers("redis") + stack.containers("api"))
        stack.scale_workers(2)
        results["stack_up_seconds"] = round(time.monotonic() - start, 1)
        yield stack
    finally:
        try:
            (podman.STATE / "compose.log").write_text(stack.logs())
        finally:
            stack.api.close()
            podman.down(volumes=True)
