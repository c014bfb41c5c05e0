"""HTTP cost of ``/v1/tensors`` against a real uvicorn process on 127.0.0.1.

Measures, with bounded loops:

1. 3×3 JSON tensors (seeded GET and POST) vs the service's own ``/healthz``: req/s and p99
   over keep-alive connections (target: tensors ≥ 0.9× healthz req/s);
2. 1000×1000 binary and JSON latency vs in-process generation of the same tensor and a raw
   NumPy draw (target: binary ≤ 2× in-process);
3. the time to refuse 10^12 elements (in-process planning, and over HTTP);
4. whether a 4096² generation blocks concurrent small requests (and, for contrast, the same
   with the threadpool disabled).

The load generator is a minimal asyncio HTTP/1.1 client in this process (lighter than httpx,
so the server, not the client, is what is measured); the server is one uvicorn process.

    .venv/bin/python bench/bench_http.py [--quick] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "http.md"
_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


@contextmanager
def uvicorn(env: dict[str, str] | None = None) -> Iterator[int]:
    """A real ``uvicorn app.main:app`` (one process) on a free port; stopped on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"uvicorn did not start:\n{err}") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request_bytes(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Conn:
    """One keep-alive HTTP/1.1 connection (responses must carry Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        return cls(reader, writer)

    async def fetch(self, raw: bytes) -> tuple[int, int]:
        """Send one request; return (status, body bytes)."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        match = _LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        await self.reader.readexactly(length)
        return status, length

    def close(self) -> None:
        self.writer.close()


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    n: int


async def _load(port: int, raws: list[bytes], connections: int, per_conn: int) -> Load:
    latencies: list[float] = []

    async def one() -> None:
        conn = await Conn.open(port)
        try:
            for i in range(per_conn):
                t0 = time.perf_counter()
                status, _ = await conn.fetch(raws[i % len(raws)])
                latencies.append(time.perf_counter() - t0)
                assert status == 200, status
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return Load(
        rps=len(latencies) / wall,
        p50_ms=1e3 * latencies[len(latencies) // 2],
        p99_ms=1e3 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        n=len(latencies),
    )


def load(port: int, raws: list[bytes], connections: int, per_conn: int, rounds: int) -> Load:
    """Best of ``rounds`` (after one warm-up round): the machine is shared, noise only slows.

    Each connection cycles through ``raws`` (e.g. one request per seed, so nothing repeats).
    """
    asyncio.run(_load(port, raws, connections, max(1, per_conn // 5)))
    results = [asyncio.run(_load(port, raws, connections, per_conn)) for _ in range(rounds)]
    return max(results, key=lambda r: r.rps)


async def _latencies(port: int, raw: bytes, n: int) -> list[float]:
    conn = await Conn.open(port)
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            status, _ = await conn.fetch(raw)
            out.append(time.perf_counter() - t0)
            assert status == 200, status
    finally:
        conn.close()
    return out


def median_ms(samples: list[float]) -> float:
    return 1e3 * statistics.median(samples)


def in_process(n: int) -> dict[str, float]:
    """Median ms of in-process generation (the engine) and a raw NumPy draw, 1000×1000."""
    import numpy as np

    from app import initializers as engine

    out = {}
    for scheme in ("he_normal", "glorot_uniform"):
        init = engine.resolve(scheme)
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            engine.generate(init, (1000, 1000), seed=i)
            samples.append(time.perf_counter() - t0)
        out[scheme] = median_ms(samples)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        np.random.default_rng(i).standard_normal((1000, 1000), dtype=np.float32)
        samples.append(time.perf_counter() - t0)
    out["numpy standard_normal"] = median_ms(samples)
    return out


def refusal_in_process(n: int) -> float:
    """µs to plan (and refuse) a 10^12-element request, median of ``n``."""
    from app.api import formats
    from app.api.routes.tensors import plan_tensor
    from app.config import Settings
    from app.errors import TooLargeError
    from app.schemas.tensors import TensorRequest

    settings = Settings()
    req = TensorRequest(shape=[1_000_000, 1_000_000], initializer="he_normal", seed=1)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        with suppress(TooLargeError):
            plan_tensor(req, media_type=formats.OCTET_STREAM, stats=False, settings=settings)
        samples.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(samples)


async def _blocking(port: int, big: bytes, small: bytes, n_small: int) -> dict[str, float]:
    """Small requests on one connection while a big one runs on another."""
    big_conn = await Conn.open(port)
    small_conn = await Conn.open(port)
    try:
        baseline = []
        for _ in range(n_small):
            t0 = time.perf_counter()
            await small_conn.fetch(small)
            baseline.append(time.perf_counter() - t0)
        t_big = time.perf_counter()
        big_task = asyncio.create_task(big_conn.fetch(big))
        await asyncio.sleep(0.02)  # let the big request reach the server
        during = []
        while not big_task.done() and len(during) < 100_000:
            t0 = time.perf_counter()
            await small_conn.fetch(small)
            during.append(time.perf_counter() - t0)
        status, _ = await big_task
        big_s = time.perf_counter() - t_big
        assert status == 200, status
    finally:
        big_conn.close()
        small_conn.close()
    return {
        "big_s": big_s,
        "baseline_p50_ms": median_ms(baseline),
        "during_n": len(during),
        "during_p50_ms": median_ms(during) if during else float("nan"),
        "during_max_ms": 1e3 * max(during) if during else float("nan"),
    }


def _load_row(label: str, r: Load, base: Load) -> str:
    return f"| {label} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.rps / base.rps:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    per_conn, rounds, reps = (200, 2, 10) if args.quick else (1000, 3, 30)
    conns = 8

    identity = {"Accept-Encoding": "identity"}
    healthz = request_bytes("GET", "/healthz", identity)
    seeds = range(per_conn)
    gets = [
        request_bytes("GET", f"/v1/tensors?shape=3,3&initializer=he_normal&seed={i}", identity)
        for i in seeds
    ]
    posts = [
        request_bytes(
            "POST",
            "/v1/tensors",
            identity,
            b'{"shape":[3,3],"initializer":"he_normal","seed":%d}' % i,
        )
        for i in seeds
    ]
    get_3x3 = gets[42]
    big_url = "/v1/tensors?shape=1000,1000&initializer={}&seed=7&format={}"
    with uvicorn() as port:
        h = load(port, [healthz], conns, per_conn, rounds)
        g = load(port, gets, conns, per_conn, rounds)
        p = load(port, posts, conns, per_conn, rounds)
        lat = {}
        for scheme in ("he_normal", "glorot_uniform"):
            for fmt in ("binary", "json"):
                raw = request_bytes("GET", big_url.format(scheme, fmt), identity)
                asyncio.run(_latencies(port, raw, 2))
                lat[(scheme, fmt)] = median_ms(asyncio.run(_latencies(port, raw, reps)))
        gz = request_bytes(
            "GET", big_url.format("he_normal", "binary"), {"Accept-Encoding": "gzip"}
        )
        lat[("he_normal", "binary+gzip")] = median_ms(asyncio.run(_latencies(port, gz, 5)))
        refuse_raw = request_bytes(
            "GET", "/v1/tensors?shape=1000000,1000000&format=binary", identity
        )

        async def refused() -> list[float]:
            conn = await Conn.open(port)
            out = []
            try:
                for _ in range(reps * 10):
                    t0 = time.perf_counter()
                    status, _ = await conn.fetch(refuse_raw)
                    out.append(time.perf_counter() - t0)
                    assert status == 413, status
            finally:
                conn.close()
            return out

        refuse_http_ms = median_ms(asyncio.run(refused()))
        health_ms = median_ms(asyncio.run(_latencies(port, healthz, reps * 10)))
        small = get_3x3
        blocking = {}
        for label, url in (
            (
                "he_normal 4096²",
                "/v1/tensors?shape=4096,4096&initializer=he_normal&seed=1&format=binary",
            ),
            (
                "orthogonal 4096²",
                "/v1/tensors?shape=4096,4096&initializer=orthogonal&seed=1&format=binary",
            ),
        ):
            blocking[label] = asyncio.run(
                _blocking(port, request_bytes("GET", url, identity), small, 50)
            )
    with uvicorn({"INITLAB_THREADPOOL_THRESHOLD_ELEMENTS": str(10**12)}) as port:
        url = "/v1/tensors?shape=4096,4096&initializer=he_normal&seed=1&format=binary"
        blocking["he_normal 4096², threadpool off"] = asyncio.run(
            _blocking(port, request_bytes("GET", url, identity), small, 50)
        )
    proc = in_process(reps)
    refuse_us = refusal_in_process(2000)

    ratio_get, ratio_post = g.rps / h.rps, p.rps / h.rps
    binary_ratio = lat[("he_normal", "binary")] / proc["he_normal"]
    out = [
        "# HTTP benchmark (`bench/bench_http.py`)",
        "",
        f"One uvicorn process on 127.0.0.1; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Load: {conns} keep-alive "
        f"connections × {per_conn} requests, best of {rounds} rounds, asyncio raw-socket "
        "client in a separate process. No gzip unless stated.",
        "",
        "## 3×3 JSON tensor vs /healthz",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | vs healthz |",
        "| --- | ---: | ---: | ---: | ---: |",
        _load_row("GET /healthz", h, h),
        _load_row("GET /v1/tensors 3×3 he_normal, a seed per request (ETag)", g, h),
        _load_row("POST /v1/tensors 3×3 he_normal, a seed per request", p, h),
        "",
        f"Target ≥ 0.90× healthz: GET {'met' if ratio_get >= 0.9 else 'NOT met'}, "
        f"POST {'met' if ratio_post >= 0.9 else 'NOT met'}.",
        "",
        "## 1000×1000 float32 (median of sequential requests, one connection)",
        "",
        "| scheme | in-process generate ms | binary ms | JSON ms | binary / in-process |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for scheme in ("he_normal", "glorot_uniform"):
        out.append(
            f"| {scheme} | {proc[scheme]:.2f} | {lat[(scheme, 'binary')]:.2f} | "
            f"{lat[(scheme, 'json')]:.2f} | {lat[(scheme, 'binary')] / proc[scheme]:.2f} |"
        )
    out += [
        "",
        f"Raw NumPy `standard_normal((1000, 1000), float32)`: "
        f"{proc['numpy standard_normal']:.2f} ms. "
        f"Binary with `Accept-Encoding: gzip` (GZipMiddleware, level 9): "
        f"{lat[('he_normal', 'binary+gzip')]:.1f} ms.",
        "",
        f"Target binary ≤ 2× in-process: {'met' if binary_ratio <= 2 else 'NOT met'} "
        f"({binary_ratio:.2f}× for he_normal).",
        "",
        "## Refusing 10^12 elements (`shape=1000000,1000000`)",
        "",
        f"- planning + refusal in-process (`plan_tensor` → 413): {refuse_us:.1f} µs (median)",
        f"- over HTTP, 413 problem+json: {refuse_http_ms:.3f} ms vs /healthz {health_ms:.3f} ms",
        "",
        "## Does a large generation block small requests?",
        "",
        "Small requests (3×3 JSON) on a second connection while one large binary tensor is "
        "generated:",
        "",
        "| large request | large s | small p50 before ms | small during (n) | p50 during ms | "
        "max during ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, b in blocking.items():
        out.append(
            f"| {label} | {b['big_s']:.2f} | {b['baseline_p50_ms']:.2f} | {b['during_n']} | "
            f"{b['during_p50_ms']:.2f} | {b['during_max_ms']:.1f} |"
        )
    text = "\n".join(out) + "\n"
    print(text)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
