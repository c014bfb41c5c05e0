"""Memory an ``.npz`` upload costs the API, against a real uvicorn process.

Scenarios (issue #7):

1. the crafted 35 MiB file: an ``x_train`` of deflated zeros whose header declares more
   elements than ``INITLAB_MAX_DATASET_ELEMENTS`` (default 200M), beside 33 MiB of stored
   random ``x_val``;
2. three of them at once;
3. a valid upload that inflates ~9x (float32 features of a few distinct values);
4. (``--quota``) one caller posting 8 uploads of 62 MiB: what is kept in Redis.

Growth = the API process's peak RSS (``VmHWM``, reset through ``/proc/<pid>/clear_refs``
before each scenario) minus its RSS before. ``--source DIR`` runs the API from another
checkout (e.g. the main one, for the figures before the change). Redis is an embedded
``redis-server`` of this run.

    .venv/bin/python bench/bench_uploads.py [--source /work/main] [--quota]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from tests.api.test_uploads_processes import (  # noqa: E402
    MiB,
    compressible_npz,
    crafted_npz,
    growth_bytes,
    post_npz,
)


def start_api(source: Path, redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "INITLAB_REDIS_URL": redis_url, "PYTHONPATH": str(source)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ],
        cwd=source,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start") from None
            time.sleep(0.1)


def at_once(n: int, call: Callable[[], httpx.Response]) -> Callable[[], list[int]]:
    def run() -> list[int]:
        out: list[int] = []
        threads = [
            threading.Thread(target=lambda: out.append(call().status_code)) for _ in range(n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(out)

    return run


def report(name: str, size: int, result: Any, grew: int) -> None:
    print(f"| {name} | {size / MiB:.1f} MiB | {result} | {grew / MiB:,.0f} MiB |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--quota", action="store_true")
    # Before the change three crafted uploads at once peak at ~8 GiB: skip them there.
    parser.add_argument("--one-at-a-time", action="store_true")
    args = parser.parse_args()
    server = EmbeddedRedis(tempfile.mkdtemp(prefix="bench-uploads-")).start()
    proc, url = start_api(args.source.resolve(), server.url)
    try:
        print(f"API from {args.source} (pid {proc.pid})\n")
        print("| scenario | upload | status | API growth (peak RSS) |\n|---|---|---|---|")
        crafted = crafted_npz(200_000_001, 33 * MiB)
        res, grew = growth_bytes(proc.pid, lambda: post_npz(url, crafted))
        report("crafted (x_train header > max elements)", len(crafted), res.status_code, grew)
        if not args.one_at_a_time:
            statuses, grew = growth_bytes(proc.pid, at_once(3, lambda: post_npz(url, crafted)))
            report("3 crafted at once", len(crafted), statuses, grew)
        valid = compressible_npz(400_000)
        res, grew = growth_bytes(proc.pid, lambda: post_npz(url, valid))
        report("valid, inflates 9x (400000 x 64 float32)", len(valid), res.status_code, grew)
        if res.status_code == 201:
            httpx.delete(f"{url}/v1/datasets/{res.json()['id']}")
        if args.quota:
            big = np.random.default_rng(2).random((62 * MiB // 800, 100))
            buf = io.BytesIO()
            np.savez(buf, x_train=big, y_train=np.zeros(len(big), np.int64))
            data = buf.getvalue()
            statuses = [post_npz(url, data).status_code for _ in range(8)]
            client = __import__("redis").Redis.from_url(server.url)
            used = int(client.info("memory")["used_memory"])
            print(
                f"\n8 uploads of {len(data) / MiB:.0f} MiB: {statuses}; Redis {used / MiB:,.0f} MiB"
            )
    finally:
        proc.terminate()
        proc.wait(10)
        server.stop()


if __name__ == "__main__":
    main()
