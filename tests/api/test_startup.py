"""Start-up loads the compiled initializer kernels, so no first request or run pays for it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from app.initializers import ziggurat
kernels = (ziggurat.standard, ziggurat.normals)  # untruncated, truncated
before = sum(len(k.signatures) for k in kernels)
{start}
print(before, sum(len(k.signatures) for k in kernels))
"""


def _signatures(start: str) -> list[int]:
    """Compiled kernel signatures before and after ``start``, in a fresh process."""
    child = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(start=start)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [int(n) for n in child.stdout.split()]


def test_the_api_loads_the_kernels_when_it_starts() -> None:
    start = (
        "from fastapi.testclient import TestClient\n"
        "from app.main import create_app\n"
        "with TestClient(create_app()) as client:\n"
        "    assert client.get('/healthz').status_code == 200"
    )
    assert _signatures(start) == [0, 2]


def test_the_worker_loads_the_kernels_on_worker_init() -> None:
    start = (
        "from celery.signals import worker_init\n"
        "import worker.celery_app\n"
        "worker_init.send(sender=None)"
    )
    assert _signatures(start) == [0, 2]
