"""HTTP cost of ``/v1/tensors`` against a real uvicorn process on 127.0.0.1.

Measures, with bounded loops:

1. 3×3 JSON tensors (seeded GET and POST) vs the service's own ``/healthz``: req/s and p99
   over keep-alive connections (target: tensors ≥ 0.9× healthz req/s);
2. 1000×1000 binary and JSON latency vs in-process generation of the same tensor and a raw
   NumPy draw (target: binary ≤ 2× in-process);
3. the time to refuse 10^12 elements (in-process planning, and over HTTP);
4. whether a 4096² (and an orthogonal 2048²) generation blocks concurrent small requests
   (and, for contrast, the same with the threadpool disabled).

The load generator is a minimal asyncio HTTP/1.1 client in this process (lighter than httpx,
so the server, not the client, is what is measured); the server is one uvicorn process.

``--baseline DIR`` also starts a uvicorn from another checkout of the project (e.g.
``git archive <commit> | tar -x -C DIR``) and measures 1. and 2. against both servers in the
same run, their rounds and requests interleaved, for a before/after table.

    .venv/bin/python bench/bench_http.py [--quick] [--write] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "http.md"
_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
_CHUNKED = re.compile(rb"(?i)\r\ntransfer-encoding:\s*chunked")


# port -> pid of the uvicorn serving it (its CPU time is read from /proc).
SERVER_PIDS: dict[int, int] = {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def uvicorn(env: dict[str, str] | None = None, root: Path = ROOT) -> Iterator[int]:
    """A real ``uvicorn app.main:app`` (one process) of the checkout at ``root`` on a free
    port; stopped on exit."""
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
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
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
        SERVER_PIDS[port] = proc.pid
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
        if match:
            length = int(match.group(1))
            await self.reader.readexactly(length)
            return status, length
        if _CHUNKED.search(head):
            length = 0
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)  # data + CRLF
                length += size
                if size == 0:
                    return status, length
        return status, 0

    def close(self) -> None:
        self.writer.close()


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    n: int
    cpu_us: float  # the server's CPU time per request


async def _load(
    port: int,
    make: Callable[[int], bytes],
    counter: Iterator[int],
    connections: int,
    per_conn: int,
) -> Load:
    latencies: list[float] = []

    async def one() -> None:
        conn = await Conn.open(port)
        try:
            for _ in range(per_conn):
                raw = make(next(counter))
                t0 = time.perf_counter()
                status, _ = await conn.fetch(raw)
                latencies.append(time.perf_counter() - t0)
                assert status == 200, status
        finally:
            conn.close()

    pid = SERVER_PIDS.get(port, 0)
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    latencies.sort()
    return Load(
        rps=len(latencies) / wall,
        p50_ms=1e3 * latencies[len(latencies) // 2],
        p99_ms=1e3 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        n=len(latencies),
        cpu_us=1e6 * cpu / len(latencies),
    )


def load_interleaved(
    scenarios: dict[str, tuple[int, Callable[[int], bytes]]],
    connections: int,
    per_conn: int,
    rounds: int,
) -> dict[str, Load]:
    """Best round per scenario (name → (server port, make)) for req/s and latencies, and the
    server's CPU time per request over all rounds (``cpu_us``: on a shared machine the
    steadier figure, since time the server waits for a core is not counted). Rounds
    alternate between scenarios so that load from other processes hits them alike.
    ``make(i)`` builds the i-th request (a fresh counter per scenario, never reset, so e.g.
    seeds never repeat)."""
    counters = {name: itertools.count() for name in scenarios}
    best: dict[str, Load] = {}
    cpu = dict.fromkeys(scenarios, 0.0)
    for r in range(rounds + 1):
        for name, (port, make) in scenarios.items():
            n = per_conn if r else max(1, per_conn // 5)  # round 0 warms up
            result = asyncio.run(_load(port, make, counters[name], connections, n))
            if r:
                cpu[name] += result.cpu_us * result.n
                if name not in best or result.rps > best[name].rps:
                    best[name] = result
    return {
        name: replace(load, cpu_us=cpu[name] / (rounds * load.n)) for name, load in best.items()
    }


def _recv_response(sock: socket.socket, buf: bytearray) -> tuple[int, int]:
    """Read one response into ``buf`` (grown as needed) with recv_into: (status, length)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    head += b"\r\n"
    match = _LENGTH.search(head)
    if match is None:
        raise AssertionError("sequential latencies need Content-Length responses")
    length = int(match.group(1))
    if len(buf) < length:
        buf.extend(bytes(length - len(buf)))
    view = memoryview(buf)
    view[: len(rest)] = rest
    got = len(rest)
    while got < length:
        got += sock.recv_into(view[got:length])
    return int(head[9:12]), length


def latencies(port: int, raw: bytes, n: int, status: int = 200) -> list[float]:
    """Sequential requests on one keep-alive connection, read with recv_into (no copies)."""
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            sock.sendall(raw)
            got, _ = _recv_response(sock, buf)
            out.append(time.perf_counter() - t0)
            assert got == status, got
    return out


def median_ms(samples: list[float]) -> float:
    return 1e3 * statistics.median(samples)


def numpy_baseline(n: int) -> float:
    """Median ms of a raw NumPy float32 standard-normal draw of 1000×1000."""
    import numpy as np

    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        np.random.default_rng(i).standard_normal((1000, 1000), dtype=np.float32)
        samples.append(time.perf_counter() - t0)
    return median_ms(samples)


def generate_3x3_us(n: int) -> float:
    """µs per ``engine.generate`` of a 3×3 he_normal (the engine's share of a small request),
    median of ``n``, a new seed each call."""
    from app import initializers as engine

    init = engine.resolve("he_normal")
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        engine.generate(init, (3, 3), seed=i)
        samples.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(samples)


def gzip_levels() -> list[tuple[str, int, float, float]]:
    """(body, level, compressed/original, ms) for a 1000×1000 he_normal tensor, in-process."""
    import zlib

    from app import initializers as engine
    from app.api import formats

    arr = engine.generate(engine.resolve("he_normal"), (1000, 1000), seed=1)
    bodies = {
        "binary float32 (4.0 MB)": arr.tobytes(),
        "JSON (%.1f MB)" % (len(formats.encode_json({}, arr)) / 1e6): formats.encode_json({}, arr),
    }
    rows = []
    for label, data in bodies.items():
        for level in (1, 6, 9):
            best, size = float("inf"), 0
            for _ in range(3):
                t0 = time.perf_counter()
                c = zlib.compressobj(level, zlib.DEFLATED, 31)
                size = len(c.compress(data) + c.flush())
                best = min(best, time.perf_counter() - t0)
            rows.append((label, level, size / len(data), 1e3 * best))
    return rows


def refusal_in_process(n: int) -> float:
    """µs to plan (and refuse) a 10^12-element request, median of ``n``."""
    from app.api import formats
    from app.api.tensor_plan import plan_tensor
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
        during: list[float] = []
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
    return (
        f"| {label} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.rps / base.rps:.2f} | "
        f"{r.cpu_us:.0f} | {base.cpu_us / r.cpu_us:.2f} |"
    )


def before_after(
    loads: dict[str, Load],
    lat: dict[tuple[str, str, str], float],
    proc: dict[str, float],
    baseline: Path,
) -> list[str]:
    """The before/after section: both servers measured in the same run, interleaved."""
    rows = [
        "",
        "## Before and after, in the same run",
        "",
        f"Before: the checkout in `{baseline}`; after: this one. The two servers ran side by "
        "side, their load rounds and 1000² requests interleaved.",
        "",
        "| request | before req/s | before vs healthz | after req/s | after vs healthz | "
        "before CPU µs/req | before healthz/it | after CPU µs/req | after healthz/it |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (
        ("healthz", "GET /healthz"),
        ("get_same", "GET 3×3 seed=42, repeated"),
        ("get_new", "GET 3×3, a new seed per request"),
        ("post_new", "POST 3×3, a new seed per request"),
    ):
        cells = []
        for side in ("before", "after"):
            r, base = loads[f"{side}:{name}"], loads[f"{side}:healthz"]
            cells += [f"{r.rps:,.0f}", f"{r.rps / base.rps:.2f}"]
        for side in ("before", "after"):
            r, base = loads[f"{side}:{name}"], loads[f"{side}:healthz"]
            cells += [f"{r.cpu_us:.0f}", f"{base.cpu_us / r.cpu_us:.2f}"]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    rows += [
        "",
        "| 1000² float32 | in-process ms | before binary ms | before / in-process | "
        "after binary ms | after / in-process |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scheme in ("he_normal", "glorot_uniform"):
        b, a = lat[("before", scheme, "binary")], lat[("after", scheme, "binary")]
        rows.append(
            f"| {scheme} | {proc[scheme]:.2f} | {b:.2f} | {b / proc[scheme]:.2f} | "
            f"{a:.2f} | {a / proc[scheme]:.2f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another checkout of the project, measured side by side (before/after)",
    )
    args = parser.parse_args()
    per_conn, rounds, reps = (200, 2, 10) if args.quick else (500, 8, 30)
    conns = 8

    identity = {"Accept-Encoding": "identity"}
    healthz = request_bytes("GET", "/healthz", identity)

    def tensor_get(seed: int) -> bytes:
        url = f"/v1/tensors?shape=3,3&initializer=he_normal&seed={seed}"
        return request_bytes("GET", url, identity)

    def tensor_post(seed: int) -> bytes:
        body = b'{"shape":[3,3],"initializer":"he_normal","seed":%d}' % seed
        return request_bytes("POST", "/v1/tensors", identity, body)

    get_3x3 = tensor_get(42)
    requests: dict[str, Callable[[int], bytes]] = {
        "healthz": lambda i: healthz,
        "get_same": lambda i: get_3x3,
        "get_new": tensor_get,
        "post_new": tensor_post,
    }
    from app import initializers as engine

    with ExitStack() as servers:
        port = servers.enter_context(uvicorn())
        ports = {"after": port}
        if args.baseline:
            ports = {"before": servers.enter_context(uvicorn(root=args.baseline)), **ports}
        scenarios = {
            f"{side}:{name}": (side_port, make)
            for side, side_port in ports.items()
            for name, make in requests.items()
        }
        loads = load_interleaved(scenarios, conns, per_conn, rounds)
        h, g_same, g, p = (loads[f"after:{k}"] for k in requests)
        # 1000×1000: in-process generation and the HTTP requests alternate, seed by seed.
        lat: dict[tuple[str, str, str], float] = {}
        proc: dict[str, float] = {}
        for scheme in ("he_normal", "glorot_uniform"):
            init = engine.resolve(scheme)
            samples: dict[tuple[str, str], list[float]] = {}
            gens = []
            for rep in range(reps + 2):
                t0 = time.perf_counter()
                engine.generate(init, (1000, 1000), seed=rep)
                gen = time.perf_counter() - t0
                for side, side_port in ports.items():
                    for fmt in ("binary", "json"):
                        url = (
                            f"/v1/tensors?shape=1000,1000&initializer={scheme}&seed={rep}"
                            f"&format={fmt}"
                        )
                        took = latencies(side_port, request_bytes("GET", url, identity), 1)[0]
                        if rep >= 2:  # the first two warm up
                            samples.setdefault((side, fmt), []).append(took)
                if rep >= 2:
                    gens.append(gen)
            proc[scheme] = median_ms(gens)
            for (side, fmt), values in samples.items():
                lat[(side, scheme, fmt)] = median_ms(values)

        async def timed(raw: bytes, n: int) -> list[float]:
            conn = await Conn.open(port)
            out = []
            try:
                for _ in range(n):
                    t0 = time.perf_counter()
                    await conn.fetch(raw)
                    out.append(time.perf_counter() - t0)
            finally:
                conn.close()
            return out

        big = "/v1/tensors?shape=1000,1000&initializer=he_normal&seed=7"
        gzip_rows = []
        for label, url in (
            ("binary", big + "&format=binary"),
            ("binary, `?compress=gzip`", big + "&format=binary&compress=gzip"),
            ("JSON", big + "&format=json"),
        ):
            for enc in ("identity", "gzip"):
                raw = request_bytes("GET", url, {"Accept-Encoding": enc})
                gzip_rows.append((label, enc, median_ms(asyncio.run(timed(raw, 7)))))
        refuse_raw = request_bytes(
            "GET", "/v1/tensors?shape=1000000,1000000&format=binary", identity
        )
        refuse_http_ms = median_ms(latencies(port, refuse_raw, reps * 10, status=413))
        health_ms = median_ms(latencies(port, healthz, reps * 10))
        small = get_3x3
        blocking = {}
        for label, url in (
            (
                "he_normal 4096²",
                "/v1/tensors?shape=4096,4096&initializer=he_normal&seed=1&format=binary",
            ),
            (
                "orthogonal 2048²",
                "/v1/tensors?shape=2048,2048&initializer=orthogonal&seed=1&format=binary",
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
    numpy_ms = numpy_baseline(reps)
    refuse_us = refusal_in_process(2000)
    gen_us = generate_3x3_us(20000)
    levels = gzip_levels()

    ratio_get, ratio_post = g.rps / h.rps, p.rps / h.rps
    binary_ratio = lat[("after", "he_normal", "binary")] / proc["he_normal"]
    out = [
        "# HTTP benchmark (`bench/bench_http.py`)",
        "",
        f"One uvicorn process on 127.0.0.1; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average at the end "
        f"{os.getloadavg()[0]:.1f} (a shared machine: other processes ran too). Load: {conns} "
        "keep-alive "
        f"connections × {per_conn} requests, {rounds} rounds, asyncio raw-socket "
        "client in a separate process. No gzip unless stated.",
        "",
        "## 3×3 JSON tensor vs /healthz",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | vs healthz | server CPU µs/req | "
        "healthz CPU / its CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        _load_row("GET /healthz", h, h),
        _load_row("GET /v1/tensors 3×3 he_normal seed=42, repeated", g_same, h),
        _load_row("GET /v1/tensors 3×3 he_normal, a new seed per request", g, h),
        _load_row("POST /v1/tensors 3×3 he_normal, a new seed per request", p, h),
        "",
        "req/s: best round; server CPU: the uvicorn process's user + system time per request "
        "over all rounds (/proc), which time spent waiting for a core does not inflate; its "
        "ratio is the req/s ratio a saturated server would show on a quiet machine.",
        "",
        f"Server time per request (1/req/s, one saturated process): /healthz "
        f"{1e6 / h.rps:.0f} µs, uncached GET {1e6 / g.rps:.0f} µs, of which the engine's "
        f"`generate()` of a 3×3 he_normal is {gen_us:.1f} µs (in-process median, new seed each "
        f"call) and the rest, {1e6 / g.rps - 1e6 / h.rps - gen_us:.0f} µs over /healthz, is "
        "the API's (parsing, planning, ETag, JSON, headers).",
        "",
        "Target ≥ 0.90× healthz (req/s; by server CPU): "
        + ", ".join(
            f"{name} {'met' if min(r, c) >= 0.9 else 'NOT met'} ({r:.2f}×; {c:.2f}×)"
            for name, r, c in (
                ("GET new seed", ratio_get, h.cpu_us / g.cpu_us),
                ("POST new seed", ratio_post, h.cpu_us / p.cpu_us),
            )
        )
        + ".",
        "",
        "## 1000×1000 float32 (medians; each HTTP request alternates with an in-process draw)",
        "",
        "| scheme | in-process generate ms | binary ms | JSON ms | binary / in-process |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for scheme in ("he_normal", "glorot_uniform"):
        out.append(
            f"| {scheme} | {proc[scheme]:.2f} | {lat[('after', scheme, 'binary')]:.2f} | "
            f"{lat[('after', scheme, 'json')]:.2f} | "
            f"{lat[('after', scheme, 'binary')] / proc[scheme]:.2f} |"
        )
    out += [
        "",
        f"Raw NumPy `standard_normal((1000, 1000), float32)`: {numpy_ms:.2f} ms.",
        "",
        f"Target binary ≤ 2× in-process: {'met' if binary_ratio <= 2 else 'NOT met'} "
        f"({binary_ratio:.2f}× for he_normal).",
        "",
        "## gzip (1000×1000 he_normal)",
        "",
        "zlib in-process (gzip framing), best of 3:",
        "",
        "| body | level | compressed / original | ms |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {b} | {lv} | {r:.3f} | {ms:.1f} |" for b, lv, r, ms in levels),
        "",
        "Over HTTP with the service's policy (JSON gzipped at level 1 when the client accepts "
        "gzip; binary formats only with `?compress=gzip`), median of 7:",
        "",
        "| request | Accept-Encoding | ms |",
        "| --- | --- | ---: |",
        *(f"| {label} | {enc} | {ms:.1f} |" for label, enc, ms in gzip_rows),
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
    if args.baseline:
        out += before_after(loads, lat, proc, args.baseline)
    text = "\n".join(out) + "\n"
    print(text)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
