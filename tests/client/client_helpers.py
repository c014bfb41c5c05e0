"""Helpers of the client tests: the CLI as a subprocess, small jobs that finish in seconds."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.client import Client

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "cancelled"}


def quick_job(steps: int = 40, repeats: int = 1) -> dict[str, Any]:
    """dlai-circles overrides: 3 schemes × ``repeats`` runs of ``steps`` full-batch steps."""
    return {"repeats": repeats, "training": {"steps": steps}}


def cli_env(url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("INITLAB_URL", "INITLAB_API_KEY")}
    env["INITLAB_URL"] = url
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def cli_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def run_cli(
    url: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 180,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``initlab <args>`` against ``url`` (INITLAB_URL), output captured as text (``stdin``:
    what it reads on its standard input)."""
    return subprocess.run(
        cli_command(args),
        env=cli_env(url, env),
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(url: str, *args: str, log_dir: Path) -> subprocess.Popen[str]:
    """``initlab <args>`` started in the background; stdout and stderr go to files in
    ``log_dir`` (``out.txt``, ``err.txt``) so the test can read them while it runs."""
    return subprocess.Popen(
        cli_command(args),
        env=cli_env(url),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=(log_dir / "out.txt").open("w"),
        stderr=(log_dir / "err.txt").open("w"),
        text=True,
    )


def wait_status(client: Client, job_id: str, statuses: set[str], timeout: float = 120) -> str:
    """Poll until the job's status is one of ``statuses`` (or it finished); return it."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = client.jobs.get(job_id).status
        if status in statuses or status in TERMINAL:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {status} after {timeout} s")


def wait_text(path: Path, text: str, proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait until the file ``path`` contains ``text`` (fail early if ``proc`` exited)."""
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path.name} (exit {proc.poll()}):\n{content}")


class Listener:
    """A TCP server on a free local port that hands every connection to ``handle`` (in its
    accept thread) and counts them; ``url`` is its ``http://`` base URL."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle = handle
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.handle(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self._thread.join(5)
