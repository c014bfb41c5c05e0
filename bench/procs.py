"""What the fault benchmarks share: the issue's workload as synthetic data, real processes
(uvicorn, plain ``celery -A worker.celery_app worker``) on an embedded redis-server, polling a
job, and writing a results file.

Imported by ``bench/bench_faults.py``, ``bench/bench_checkpoint.py`` and
``bench/bench_recovery.py`` (run from the repository root: ``bench/`` is their directory).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The workload: Fashion-MNIST-sized examples (784 inputs, 10 classes).
N, VAL, D, K = 20_000, 2_000, 784, 10
# Settings the benchmarks measure at their defaults: never inherited from the caller's shell.
FAULT_SETTINGS = (
    "INITLAB_LEASE_SECONDS",
    "INITLAB_WATCHDOG_INTERVAL_SECONDS",
    "INITLAB_CHECKPOINT_SECONDS",
    "INITLAB_QUEUED_RESEND_SECONDS",
    "INITLAB_WORKER_BLAS_THREADS",
)


def synthetic(n: int = N, val: int = VAL, seed: int = 0) -> dict[str, Any]:
    """``x_train, y_train, x_val, y_val``: uniform float32 inputs, random labels (timing only)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.random((n, D), dtype=np.float32),
        "y_train": rng.integers(0, K, n).astype(np.int64),
        "x_val": rng.random((val, D), dtype=np.float32),
        "y_val": rng.integers(0, K, val).astype(np.int64),
    }


def upload(client: httpx.Client) -> str:
    """Upload :func:`synthetic` as an ``.npz`` dataset; returns its id."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **synthetic())
    res = client.post(
        "/v1/datasets", files={"file": ("fake.npz", buf.getvalue(), "application/octet-stream")}
    )
    res.raise_for_status()
    return str(res.json()["id"])


def child_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of the benchmark's children: this repository, ``redis_url``, the fault
    settings at their defaults unless given in ``extra``."""
    env = {
        **os.environ,
        "INITLAB_REDIS_URL": redis_url,
        "PYTHONPATH": str(ROOT),
        "INITLAB_MAX_UPLOAD_BYTES": str(128 * 1024**2),  # the 69 MB upload
    }
    for var in FAULT_SETTINGS:
        env.pop(var, None)
    env.update(extra)
    return env


class Proc:
    """A child process in its own session (so a kill takes its pool processes too)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.file = log.open("wb")
        self.p = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self.file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, sig)
        self.p.wait(20)
        self.file.close()


def start_api(env: dict[str, str], tmp: Path) -> tuple[Proc, httpx.Client]:
    """uvicorn ``app.main:app`` on a free port, once ``/healthz`` answers; and a client of it."""
    from app.embedded_redis import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
    api = Proc([*cmd, "--log-level", "warning"], env, tmp / "api.log")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if client.get("/healthz").status_code == 200:
                return api, client
        if time.monotonic() > deadline:
            api.kill()
            raise RuntimeError(api.text())
        time.sleep(0.2)


def start_worker(env: dict[str, str], tmp: Path, concurrency: int) -> tuple[Proc, str]:
    """A worker started the documented way, once it logged ``ready.``; and its name."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        f"--concurrency={concurrency}",
        f"--hostname={name}@%h",
        "--loglevel=INFO",
        "--without-mingle",
        "--without-gossip",
    ]
    proc = Proc(cmd, env, tmp / f"{name}.log")
    deadline = time.monotonic() + 90
    while " ready." not in proc.text():
        if time.monotonic() > deadline or proc.p.poll() is not None:
            proc.kill()
            raise RuntimeError(proc.text())
        time.sleep(0.2)
    return proc, name


def wait(
    client: httpx.Client,
    job_id: str,
    cond: Callable[[dict[str, Any]], bool],
    timeout: float = 900,
    every: float = 0.1,
) -> dict[str, Any]:
    """Poll the job document until ``cond`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if cond(doc):
            return doc
        if time.monotonic() > deadline:
            raise RuntimeError(f"timeout: {doc['status']}")
        time.sleep(every)


def done(doc: dict[str, Any]) -> bool:
    return doc["status"] in ("succeeded", "failed", "cancelled")


def publish(lines: list[str], results: Path, write: bool) -> None:
    """Print the results (markdown lines) and, with ``write``, keep them in ``results``."""
    name = Path(sys.argv[0]).name
    text = "\n".join([*lines, "", f"Run: `.venv/bin/python bench/{name} --write`"]) + "\n"
    print(text)
    if write:
        results.write_text(text)
