"""What the rate limits cost the hot path: 3×3 tensors against ``/healthz``, limits off and on.

Two real uvicorn processes (bench_http's), one with every ``INITLAB_RATE_LIMIT_*`` empty (the
default: the middleware is not installed), one with the tensor group limited high enough
never to refuse (each request still counted in Redis: two round trips). ``/healthz`` is never
limited, so it is the yardstick in both; the figure is tensors req/s over healthz req/s.

    .venv/bin/python bench/bench_ratelimit.py [--quick] [--write]

Counts on ``INITLAB_REDIS_URL`` (else 127.0.0.1:6379) if it answers, else on an embedded
redis-server started for the run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_http import Load, load_interleaved, request_bytes, uvicorn  # noqa: E402

from app.embedded_redis import EmbeddedRedis, ping  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ratelimit.md"
ON = {"INITLAB_RATE_LIMIT_TENSORS": "1000000000/hour"}
OFF = {"INITLAB_RATE_LIMIT_TENSORS": "", "INITLAB_RATE_LIMIT_DEFAULT": ""}


def scenarios() -> dict[str, Callable[[int], bytes]]:
    identity = {"Accept-Encoding": "identity"}
    healthz = request_bytes("GET", "/healthz", identity)

    def get_new(seed: int) -> bytes:
        url = f"/v1/tensors?shape=3,3&initializer=he_normal&seed={seed}"
        return request_bytes("GET", url, identity)

    def post_new(seed: int) -> bytes:
        body = b'{"shape":[3,3],"initializer":"he_normal","seed":%d}' % seed
        return request_bytes("POST", "/v1/tensors", identity, body)

    return {"healthz": lambda i: healthz, "get_new": get_new, "post_new": post_new}


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """The configured Redis if it answers, else an embedded one for the run."""
    url = os.environ.get("INITLAB_REDIS_URL") or "redis://127.0.0.1:6379/0"
    if ping(url):
        yield url
        return
    with tempfile.TemporaryDirectory() as data, EmbeddedRedis(data) as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    per_conn, rounds = (200, 2) if args.quick else (1000, 3)
    results: dict[str, dict[str, Load]] = {}
    with redis_url() as url:
        for label, env in (("off", OFF), ("on", ON)):
            with uvicorn({**env, "INITLAB_REDIS_URL": url}) as port:
                results[label] = load_interleaved(port, scenarios(), 8, per_conn, rounds)
    lines = [
        "# Rate limits: cost on the 3×3 tensor path",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.python_version()}, one uvicorn process, "
        f"8 keep-alive connections × {per_conn} requests, best of {rounds} interleaved rounds "
        "(`bench/bench_ratelimit.py`). Limits on: `INITLAB_RATE_LIMIT_TENSORS=1000000000/hour` "
        "(counted in Redis, never refused); `/healthz` is never limited.",
        "",
        "| limits | endpoint | req/s | p50 ms | p99 ms | vs healthz |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for label, loads in results.items():
        base = loads["healthz"]
        for name, load in loads.items():
            lines.append(
                f"| {label} | {name} | {load.rps:,.0f} | {load.p50_ms:.2f} | "
                f"{load.p99_ms:.2f} | {load.rps / base.rps:.2f} |"
            )
    on, off = results["on"], results["off"]
    for name in ("get_new", "post_new"):
        lines.append(
            f"\n{name}: limits on / off = {on[name].rps / off[name].rps:.2f} "
            f"(req/s {on[name].rps:,.0f} / {off[name].rps:,.0f})"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
