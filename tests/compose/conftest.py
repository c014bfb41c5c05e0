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
from collections.abc import Iterator
from typing import Any

import pytest

from tests.compose import podman
from tests.compose.stack import Stack

# A generous bound (seconds): a safety net against a hung build, never a speed assertion.
BUILD_TIMEOUT = 900


def _require_podman() -> None:
    reason = podman.missing()
    if not reason:
        return
    if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
        pytest.fail(f"the compose tests must run under CI=true, but {reason} (see .ci/run)")
    pytest.skip(reason)


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
