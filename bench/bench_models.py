"""/v1/models against a real uvicorn process.

1. ``weights.bin`` of a ~25M-parameter MLP (4096-2048-4096-2048, glorot_uniform kernels)
   streamed over HTTP against generating the same tensors in-process (best of 3; target
   ≥ 0.8×), and the API's peak RSS growth while serving it (target: about the largest
   weight, 8.4M float32 = 32 MiB, not the model's 100 MiB).
2. With node and tests/conformance/tfjs/node_modules: ``bench/tfjs/models.mjs``, the time to
   an initialized model in TF.js (``tf.loadLayersModel`` from the service against TF.js
   building it itself) for the MLP, a small CNN and the LSTM(256) model of issue #8.

    .venv/bin/python bench/bench_models.py [--tfjs-lstm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_uploads import start_api  # noqa: E402

from app.embedded_redis import EmbeddedRedis  # noqa: E402
from app.models import Limits, plan_model, weight_values  # noqa: E402
from tests.api.test_uploads_processes import MiB, growth_bytes  # noqa: E402

BIG = {
    "input_shape": [4096],
    "seed": 1,
    "layers": [
        {"type": "dense", "units": 2048, "activation": "relu"},
        {"type": "dense", "units": 4096, "activation": "relu"},
        {"type": "dense", "units": 2048},
    ],
}
TFJS_DIR = ROOT / "tests" / "conformance" / "tfjs"


def in_process_seconds() -> float:
    plan = plan_model(BIG, Limits(10**9, 256, 2**24, 2048**3, 8))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for w in plan.weights:
            weight_values(w)
        best = min(best, time.perf_counter() - t0)
    return best


def http_seconds(url: str) -> tuple[float, int]:
    best, size = float("inf"), 0
    with httpx.Client(timeout=120) as client:
        for _ in range(3):
            t0 = time.perf_counter()
            with client.stream("GET", url) as resp:
                resp.raise_for_status()
                size = sum(len(chunk) for chunk in resp.iter_raw())
            best = min(best, time.perf_counter() - t0)
    return best, size


def curl_seconds(url: str) -> float | None:
    """Best of 3 with curl (a C client: a Python client's own reading costs more than the
    server's sending)."""
    curl = shutil.which("curl")
    if curl is None:
        return None
    times = []
    for _ in range(3):
        done = subprocess.run(
            [curl, "-sf", "-o", os.devnull, "-w", "%{time_total}", url],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(done.stdout))
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tfjs-lstm", action="store_true", help="also let TF.js init the LSTM")
    args = parser.parse_args()
    server = EmbeddedRedis(tempfile.mkdtemp(prefix="bench-models-")).start()
    proc, base = start_api(ROOT, server.url)
    try:
        model = httpx.post(f"{base}/v1/models", json=BIG, timeout=60).json()
        url = base + model["links"]["weights_bin"]
        http_seconds(url)  # warm-up (kernels loaded, connection pool)
        local = in_process_seconds()
        remote, size = http_seconds(url)
        (_, size), grew = growth_bytes(proc.pid, lambda: http_seconds(url))
        print(f"weights.bin, {model['params']:,} parameters ({size / MiB:.0f} MiB), best of 3:\n")
        print("| in-process generation | client | GET weights.bin | ratio | API peak RSS growth |")
        print("|---|---|---|---|---|")
        rows = [("httpx (Python)", remote), ("curl", curl_seconds(url))]
        for client, seconds in rows:
            if seconds is not None:
                print(
                    f"| {local * 1000:.0f} ms | {client} | {seconds * 1000:.0f} ms "
                    f"| {local / seconds:.2f}× | {grew / MiB:.0f} MiB |",
                    flush=True,
                )
        print()
        node = shutil.which("node")
        if node and (TFJS_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
            env = {**os.environ, "INITLAB_URL": base, "TFJS_DIR": str(TFJS_DIR)}
            cmd = [node, str(ROOT / "bench" / "tfjs" / "models.mjs")]
            out = subprocess.run(
                cmd + (["--tfjs-lstm"] if args.tfjs_lstm else []),
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            print("TF.js 4.22 (node, CPU backend), time to an initialized model:\n")
            print("\n".join(line for line in out.stdout.splitlines() if line.startswith("|")))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.stop()


if __name__ == "__main__":
    main()
