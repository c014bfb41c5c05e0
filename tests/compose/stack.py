"""The running compose project as the tests see it: its containers, their healthchecks
(podman 4.3 runs none by itself: :meth:`Stack.healthy` runs one), the API, and waiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.compose import podman
from tests.polling import poll

API = "http://127.0.0.1:18480"  # compose.test.yml publishes the API here
# A generous bound (seconds): a safety net against a hung stack, never a speed assertion.
HEALTHY_TIMEOUT = 180


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` every 0.5 s until it returns something truthy (then return it); an
    HTTP error or a failed podman command counts as not up yet."""
    return poll(condition, timeout, what, every=0.5, retry_on=(httpx.HTTPError, RuntimeError))


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
