"""/v1/models against a real uvicorn process.

1. ``weights.bin`` of a ~25M-parameter MLP (4096-2048-4096-2048, glorot_uniform kernels)
   fetched over HTTP against generating the same tensors in-process (target ≥ 0.8×), one of
   each in turn per repetition (the shared machine's drift hits both: the ratio is taken pair by
   pair), with three clients: a plain socket reading into a 1 MiB buffer (what the server can
   do), httpx and curl (which read 16 KiB at a time). CPU: the in-process generation's own
   (all threads) against the API process's per request. Then the API's peak RSS growth while
   serving it (target: about the largest weight, 8.4M float32 = 32 MiB, not the model's 96 MiB).
2. With node and tests/conformance/tfjs/node_modules: ``bench/tfjs/models.mjs``, the time to
   an initialized model in TF.js (``tf.loadLayersModel`` from the service against TF.js
   building it itself, interleaved) for the MLP, a small CNN and the LSTM(256) model of #8.
3. The same bytes over loopback TCP with no HTTP (``bench/loopback.py``): the ceiling of the
   ratio for any server on these cores.

    .venv/bin/python bench/bench_models.py [--repeats 9] [--tfjs-lstm]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loopback  # noqa: E402
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


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far (``/proc/<pid>/task/*/schedstat``, ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def in_process() -> None:
    plan = plan_model(BIG, Limits(10**9, 256, 2**24, 2048**3, 8))
    for w in plan.weights:
        weight_values(w)


def socket_get(url: str) -> int:
    """GET with a plain socket, the body read into one 1 MiB buffer: the bytes received."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        head, _, got = head.partition(b"\r\n\r\n")
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
        length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
        buffer = memoryview(bytearray(1 << 20))
        size = len(got)
        while size < length:
            n = sock.recv_into(buffer)
            if not n:
                raise RuntimeError(f"connection closed after {size} of {length} bytes")
            size += n
        return size


def httpx_get(client: httpx.Client, url: str) -> int:
    with client.stream("GET", url) as resp:
        resp.raise_for_status()
        return sum(len(chunk) for chunk in resp.iter_raw())


def curl_get(curl: str, url: str) -> int:
    done = subprocess.run(
        [curl, "-sf", "-o", os.devnull, "-w", "%{size_download}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def timed(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def spread(xs: list[float], unit: float = 1000, fmt: str = "{:.0f}") -> str:
    m, lo, hi = (fmt.format(v * unit) for v in (statistics.median(xs), min(xs), max(xs)))
    return f"{m} [{lo}-{hi}]"


def weights_bin(base: str, pid: int, repeats: int) -> None:
    model = httpx.post(f"{base}/v1/models", json=BIG, timeout=60).json()
    url = base + model["links"]["weights_bin"]
    client = httpx.Client(timeout=120)
    gets: dict[str, Callable[[], int]] = {
        "socket, 1 MiB reads": lambda: socket_get(url),
        "httpx (Python)": lambda: httpx_get(client, url),
    }
    curl = shutil.which("curl")
    if curl is not None:
        gets["curl"] = lambda: curl_get(curl, url)
    for get in gets.values():  # warm-up: code loaded, the generator's pool started
        assert get() == model["bytes"]
    in_process()
    local: list[float] = []
    local_cpu: list[float] = []
    remote: dict[str, list[float]] = {name: [] for name in gets}
    server_cpu: list[float] = []
    me = os.getpid()
    for _ in range(repeats):
        before = cpu_seconds(me)
        local.append(timed(in_process))
        local_cpu.append(cpu_seconds(me) - before)
        for name, get in gets.items():
            before = cpu_seconds(pid)
            remote[name].append(timed(get))
            if name == "socket, 1 MiB reads":
                server_cpu.append(cpu_seconds(pid) - before)
    _, grew = growth_bytes(pid, gets["socket, 1 MiB reads"])
    client.close()
    wire = loopback.measure(model["bytes"], repeats)
    print(
        f"weights.bin, {model['params']:,} parameters ({model['bytes'] / MiB:.0f} MiB), "
        f"median [min-max] of {repeats}, in-process generation and each GET in turn:\n"
    )
    print("| client | in-process generation ms | GET weights.bin ms | ratio (median of pairs) |")
    print("|---|---|---|---|")
    for name, times in remote.items():
        ratios = [a / b for a, b in zip(local, times, strict=True)]
        print(f"| {name} | {spread(local)} | {spread(times)} | {spread(ratios, 1, '{:.2f}')}× |")
    cpu_ratios = [a / b for a, b in zip(local_cpu, server_cpu, strict=True)]
    print(
        f"\nCPU ms: in-process generation {spread(local_cpu)}, the API per GET (socket client) "
        f"{spread(server_cpu)}: ratio {spread(cpu_ratios, 1, '{:.2f}')}×. "
        f"API peak RSS growth during one GET: {grew / MiB:.0f} MiB.\n",
        flush=True,
    )
    gen_wall, gen_cpu = statistics.median(local), statistics.median(local_cpu)
    cores = os.cpu_count() or 1
    send = statistics.median(wire.send_cpu)
    print(
        f"The same bytes over loopback TCP with no HTTP (bench/loopback.py, median of {repeats}): "
        f"send CPU {spread(wire.send_cpu)} ms, receive CPU {spread(wire.recv_cpu)} ms, wall "
        f"{spread(wire.wall)} ms. Ceiling of the ratio for any server on these {cores} cores, "
        f"however well it overlaps sending with generating: "
        f"{loopback.ceiling(gen_wall, gen_cpu, wire.cpu, cores):.2f}× with the client here, "
        f"{loopback.ceiling(gen_wall, gen_cpu, send, cores):.2f}× with the client elsewhere.\n",
        flush=True,
    )


def tfjs(base: str, lstm: bool) -> None:
    node = shutil.which("node")
    if not node or not (TFJS_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        print("TF.js: skipped (no node or tests/conformance/tfjs/node_modules)")
        return
    env = {**os.environ, "INITLAB_URL": base, "TFJS_DIR": str(TFJS_DIR)}
    cmd = [node, str(ROOT / "bench" / "tfjs" / "models.mjs")]
    out = subprocess.run(
        cmd + (["--tfjs-lstm"] if lstm else []),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    print("TF.js 4.22 (node, CPU backend), time to an initialized model, interleaved:\n")
    print("\n".join(line for line in out.stdout.splitlines() if line.startswith("|")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--tfjs-lstm", action="store_true", help="also let TF.js init the LSTM")
    args = parser.parse_args()
    server = EmbeddedRedis(tempfile.mkdtemp(prefix="bench-models-")).start()
    proc, base = start_api(ROOT, server.url)
    try:
        print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)\n")
        weights_bin(base, proc.pid, args.repeats)
        tfjs(base, args.tfjs_lstm)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.stop()


if __name__ == "__main__":
    main()
