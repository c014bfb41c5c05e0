"""The ``initlab`` command: run the whole service locally with one command, or be its client.

``initlab run``   the API (uvicorn), one Celery worker and, when no Redis URL is configured
                  (``INITLAB_REDIS_URL`` / ``REDIS_URL``), an embedded redis-server whose data
                  (append-only file, so jobs survive a restart) lives in ``.initlab/redis``.
                  Ctrl-C (SIGINT) or SIGTERM stops all of them; if any of them dies, the others
                  are stopped and the command exits non-zero.
``initlab redis`` only the embedded redis-server, in the foreground.

The client commands (``initlab jobs|tensors|initializers|datasets|presets|models``) talk to a
running server over HTTP; they live in :mod:`app.client.cli` (docs/client.md).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from app.client.cli import add_commands
from app.embedded_redis import EmbeddedRedis, EmbeddedRedisError, die_with_parent

REDIS_DIR = Path(".initlab") / "redis"
CELERY_APP = "worker.celery_app:celery_app"
# Environment every child gets unless the user already set it. The worker sets its own
# performance defaults (OPENBLAS_THREAD_TIMEOUT, BLAS threads per pool process) in
# worker/celery_app.py, so a plain `celery ... worker` behaves the same. The API's: idle
# OpenBLAS threads sleep instead of spinning (they steal the cores other processes need: on
# 2 cores orthogonal 1000² took 624 ms instead of 164 ms), and one BLAS thread.
CHILD_ENV_DEFAULTS: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
API_ENV_DEFAULTS: dict[str, str] = {"OPENBLAS_THREAD_TIMEOUT": "4", "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class Child:
    """One supervised child process (in its own process group)."""

    name: str
    cmd: list[str]
    stop_timeout: float
    # Environment this child gets unless the user already set the variable.
    env_defaults: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            self.cmd,
            env={**self.env_defaults, **env},
            stdin=subprocess.DEVNULL,
            # Own session: Ctrl-C reaches only us, and we stop the children in order.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        _say(f"started {self.name} (pid {self.process.pid})")

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """SIGTERM, wait ``stop_timeout`` s, then SIGKILL the whole process group."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(self.stop_timeout)
        # Whatever is left of the group (pool children, a parent that ignored SIGTERM).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _say(message: str, stream: IO[str] | None = None) -> None:
    print(f"initlab: {message}", file=stream or sys.stderr, flush=True)


class _Stop(Exception):
    """Raised from the signal handler to leave the supervision loop."""


@contextlib.contextmanager
def _signals_raise_stop() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        # A second Ctrl-C during shutdown is ignored: shutdown is already bounded by timeouts.
        signal.signal(signum, signal.SIG_IGN)
        raise _Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def _locked_redis_dir(data_dir: Path) -> Iterator[None]:
    """One embedded Redis per data directory (two servers on one AOF would corrupt it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"initlab: {data_dir} is in use by another `initlab run`/`initlab redis`"
            ) from None
        yield


def _configured_redis_url() -> str | None:
    return os.environ.get("INITLAB_REDIS_URL") or os.environ.get("REDIS_URL") or None


def _watch(children: list[Child], server: EmbeddedRedis | None) -> int:
    """Block until a child (or the embedded Redis) exits; return a non-zero code for it."""
    watched = [(child.name, child.poll) for child in children]
    if server is not None and server.process is not None:
        watched.append(("redis-server", server.process.poll))
    while True:
        for name, poll in watched:
            code = poll()
            if code is not None:
                _say(f"{name} exited with code {code}; stopping the others")
                return code or 1
        time.sleep(0.2)


@contextlib.contextmanager
def _ignoring_signals() -> Iterator[None]:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _children(args: argparse.Namespace) -> list[Child]:
    """The processes ``initlab run`` supervises, in start order (stopped in reverse)."""
    python = sys.executable
    worker_cmd = [python, "-m", "celery", "-A", CELERY_APP, "worker", "--pool=prefork"]
    worker_cmd += [f"--hostname=initlab-{os.getpid()}@%h", "--loglevel=INFO"]
    if args.concurrency:
        worker_cmd.append(f"--concurrency={args.concurrency}")
    # No beat: the watchdog that re-enqueues orphaned runs lives in every worker.
    children = [Child("worker", worker_cmd, stop_timeout=args.worker_stop_timeout)]
    api_cmd = [python, "-m", "uvicorn", "app.main:app", "--host", args.host]
    api_cmd += ["--port", str(args.port), "--workers", str(args.workers)]
    # The API's only BLAS call is orthogonal's QR, run on request threads while the draws use
    # their own thread pool: one BLAS thread keeps QR from oversubscribing the cores (2048² QR
    # 1.2 s on one thread here; threaded OpenBLAS QR collapses when the cores are busy).
    children.append(Child("api", api_cmd, stop_timeout=15, env_defaults=API_ENV_DEFAULTS))
    return children


def child_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus :data:`CHILD_ENV_DEFAULTS` where ``base`` does not set them."""
    return {**CHILD_ENV_DEFAULTS, **base}


def run(args: argparse.Namespace) -> int:
    """``initlab run``: embedded Redis (if needed) + Celery worker + uvicorn."""
    env = child_env(os.environ)
    server: EmbeddedRedis | None = None
    children: list[Child] = []
    exit_code = 0
    with contextlib.ExitStack() as stack:
        try:
            # From here on SIGINT/SIGTERM raise _Stop wherever we are; `finally` cleans up.
            with _signals_raise_stop():
                redis_url = _configured_redis_url()
                if redis_url is None:
                    data_dir = Path(args.redis_dir).resolve()
                    stack.enter_context(_locked_redis_dir(data_dir))
                    server = EmbeddedRedis(
                        data_dir, port=args.redis_port or None, persistent=True, tie_to_parent=True
                    )
                    server.start()
                    redis_url = server.url
                    _say(f"embedded redis-server at {redis_url} (data in {data_dir})")
                else:
                    _say(f"using Redis at {redis_url}")
                env.pop("REDIS_URL", None)
                env["INITLAB_REDIS_URL"] = redis_url
                children = _children(args)
                for child in children:
                    child.start(env)
                _say(f"API on http://{args.host}:{args.port} (docs: /docs); Ctrl-C stops all")
                exit_code = _watch(children, server)
        except _Stop as stop:
            _say(f"{stop} received, stopping")
        except EmbeddedRedisError as exc:
            _say(str(exc))
            exit_code = 1
        finally:
            with _ignoring_signals():
                for child in reversed(children):
                    child.stop()
                if server is not None:
                    server.stop()
    return exit_code


def redis(args: argparse.Namespace) -> int:
    """``initlab redis``: the embedded redis-server in the foreground."""
    data_dir = Path(args.redis_dir).resolve()
    with _locked_redis_dir(data_dir):
        server = EmbeddedRedis(
            data_dir,
            host=args.host,
            port=args.port,
            persistent=True,
            log_to_stdout=True,
            tie_to_parent=True,
        )
        try:
            with _signals_raise_stop():
                server.start()
                _say(f"redis-server at {server.url} (data in {data_dir}); Ctrl-C stops it")
                while server.process is not None and server.process.poll() is None:
                    time.sleep(0.2)
            _say("redis-server exited")
            return 1
        except _Stop:
            return 0
        except EmbeddedRedisError as exc:
            _say(str(exc))
            return 1
        finally:
            with _ignoring_signals():
                server.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="initlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser("run", help="API + Celery worker (+ embedded Redis if none is set)")
    run_p.add_argument("--host", default="127.0.0.1", help="API bind address")
    run_p.add_argument("--port", type=int, default=8000, help="API port")
    run_p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    run_p.add_argument(
        "--concurrency", type=int, default=0, help="Celery pool processes (default: CPU count)"
    )
    run_p.add_argument("--redis-dir", default=str(REDIS_DIR), help="embedded Redis data dir")
    run_p.add_argument(
        "--redis-port", type=int, default=0, help="embedded Redis port (default: a free one)"
    )
    run_p.add_argument(
        "--worker-stop-timeout",
        type=float,
        default=10.0,
        help="seconds the worker may finish running tasks on shutdown (they are redelivered)",
    )
    run_p.set_defaults(func=run)

    redis_p = sub.add_parser("redis", help="the embedded redis-server in the foreground")
    redis_p.add_argument("--host", default="127.0.0.1")
    redis_p.add_argument("--port", type=int, default=6379)
    redis_p.add_argument("--redis-dir", default=str(REDIS_DIR), help="data dir")
    redis_p.set_defaults(func=redis)
    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``initlab`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
