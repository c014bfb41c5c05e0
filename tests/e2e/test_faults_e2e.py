"""Faults with real processes (uvicorn API, Celery workers, redis-server): a worker killed
with SIGKILL mid-job, whose runs resume on another worker from their checkpoints, and a Redis
restart mid-job that the running runs ride out. Either way the job's curves are bit-identical
to an uninterrupted job of the same spec and seed, every run is recorded once, and an SSE
client following the job sees every step of every run once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
import pytest
from test_jobs_e2e import finished, wait_for  # tests/e2e is on sys.path (rootdir imports)

from app.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration

# Short leases (a killed worker's runs are re-enqueued within seconds) and frequent checkpoints
# (circles epochs last milliseconds).
WORKER_ENV = {
    "INITLAB_LEASE_SECONDS": "3",
    "INITLAB_WATCHDOG_INTERVAL_SECONDS": "1",
    "INITLAB_CHECKPOINT_SECONDS": "0.3",
}
STEPS = 8000


def job_spec(steps: int = STEPS) -> dict[str, Any]:
    return {
        "dataset": {"name": "circles", "train_size": 300, "validation_size": 100, "noise": 0.05},
        "model": {"hidden_layers": [32, 32], "activation": "relu", "dropout": 0.1},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "batch_size": 16,
            "steps": steps,
        },
        "schemes": [
            {"label": "He", "initializer": "he_normal"},
            {"label": "Glorot", "initializer": "glorot_uniform"},
        ],
        "seed": 3,
        # Every batch loss kept, so the curves are compared point by point.
        "record": {"plot_n_batches": 100, "max_batch_points": min(steps, 20_000)},
    }


def submit(client: httpx.Client, steps: int = STEPS) -> str:
    res = client.post("/v1/jobs", json=job_spec(steps))
    assert res.status_code == 202, res.text
    job_id: str = res.json()["id"]
    return job_id


def curves(run: dict[str, Any]) -> dict[str, Any]:
    """What must match bit for bit between two runs of the same spec and seed."""
    return {
        "batch_steps": run["batch_steps"],
        "batch_losses": run["batch_losses"],
        "epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in run["epochs"]],
        "diagnostics": run["diagnostics"],
        "final": run["final"],
    }


def assert_same_curves(reference: dict[str, Any], doc: dict[str, Any]) -> None:
    assert doc["status"] == "succeeded", doc["error"]
    assert doc["progress"]["runs_done"] == 2
    for ref, run in zip(reference["runs"], doc["runs"], strict=True):
        assert run["status"] == "succeeded"
        assert run["batch"] == STEPS
        # Recorded once: every step once, in order.
        assert run["batch_steps"] == list(range(STEPS))
        assert curves(run) == curves(ref)


class StreamReader(threading.Thread):
    """Follows a job's SSE stream to its ``end``, reconnecting once with ``Last-Event-ID``
    after ``reconnect_after`` events (as a browser's EventSource does after a dropped
    connection)."""

    def __init__(self, base_url: str, job_id: str, reconnect_after: int) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/v1/jobs/{job_id}/events"
        self.reconnect_after = reconnect_after
        self.events: list[httpx_sse.ServerSentEvent] = []
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with httpx.Client(timeout=60) as client:
                while not self._follow(client):
                    pass
        except BaseException as exc:  # re-raised by the test's thread
            self.error = exc

    def _follow(self, client: httpx.Client) -> bool:
        headers = {"Last-Event-ID": self.events[-1].id} if self.events else {}
        with httpx_sse.connect_sse(client, "GET", self.url, headers=headers) as source:
            for event in source.iter_sse():
                self.events.append(event)
                if event.event == "end":
                    return True
                if event.event == "points" and len(self.events) >= self.reconnect_after > 0:
                    self.reconnect_after = 0
                    return False
        return True

    def result(self) -> list[httpx_sse.ServerSentEvent]:
        self.join(60)
        assert not self.is_alive(), "the event stream did not end"
        if self.error is not None:
            raise self.error
        return self.events


def assert_each_step_streamed_once(
    events: list[httpx_sse.ServerSentEvent], doc: dict[str, Any]
) -> None:
    """Every step and epoch record of every run of ``doc`` once, in order; stream positions
    unique."""
    assert events[-1].event == "end" and events[-1].json()["status"] == "succeeded"
    kept = [e for e in events if e.event in ("points", "epoch")]
    assert len({e.id for e in kept}) == len(kept)
    for index, run in enumerate(doc["runs"]):
        steps = [
            step
            for e in kept
            if e.event == "points" and e.json()["run"] == index
            for step, _loss in e.json()["points"]
        ]
        assert steps == list(range(STEPS)), f"run {index}"
        epochs = [
            e.json()["record"]["epoch"]
            for e in kept
            if e.event == "epoch" and e.json()["run"] == index
        ]
        assert epochs == [e["epoch"] for e in run["epochs"]] and epochs, f"run {index}"


def test_runs_of_a_sigkilled_worker_resume_from_their_checkpoints_bit_identically(
    api_server: str, start_worker: Callable[..., Any]
) -> None:
    with httpx.Client(base_url=api_server, timeout=30) as client:
        first = start_worker(concurrency=2, env=WORKER_ENV)
        reference = wait_for(client, submit(client), finished, 180)
        assert all(r["resumed_from_step"] is None for r in reference["runs"])

        job_id = submit(client)
        stream = StreamReader(api_server, job_id, reconnect_after=20)

        def checkpointed(doc: dict[str, Any]) -> bool:
            return all(
                r["status"] == "running"
                and (r["checkpoint_step"] or 0) > 0
                and r["batch"] > r["checkpoint_step"]
                for r in doc["runs"]
            )

        before = wait_for(client, job_id, checkpointed, 120)
        assert all(r["batch"] < STEPS for r in before["runs"])
        first.kill9()
        second = start_worker(concurrency=2, env=WORKER_ENV)
        doc = wait_for(client, job_id, finished, 180)
    assert_same_curves(reference, doc)
    # The client saw the steps each run trained again after its checkpoint only once.
    assert_each_step_streamed_once(stream.result(), doc)
    for old, run in zip(before["runs"], doc["runs"], strict=True):
        assert run["attempt"] == 2
        assert run["worker"].split("@")[0] == second.hostname.split("@")[0]
        # Resumed from (at least) the checkpoint seen before the kill, not from zero.
        assert run["resumed_from_step"] is not None
        assert run["resumed_from_step"] >= old["checkpoint_step"] > 0
        assert run["checkpoint_skipped"] is None
    assert second.log().count("resumes from step") == 2


def test_running_runs_ride_out_a_redis_restart(
    tmp_path: Path, start_api: Callable[..., Any], start_worker: Callable[..., Any]
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True).start()
    try:
        # The default lease (10 s, renewed every third of it) outlasts the outage on Redis's
        # clock, which runs on while the server is down: the runs' own workers still hold
        # them when Redis is back.
        env = {**WORKER_ENV, "INITLAB_REDIS_URL": server.url}
        env.pop("INITLAB_LEASE_SECONDS")
        api = start_api(env={"INITLAB_REDIS_URL": server.url})
        worker = start_worker(concurrency=2, env=env)
        with httpx.Client(base_url=api.url, timeout=30) as client:
            reference = wait_for(client, submit(client), finished, 180)
            job_id = submit(client)

            def under_way(doc: dict[str, Any]) -> bool:
                return all(r["status"] == "running" and r["batch"] > 500 for r in doc["runs"])

            before = wait_for(client, job_id, under_way, 120)
            assert all(r["batch"] < STEPS / 2 for r in before["runs"])
            server.stop()  # SIGTERM: Redis writes its append-only file and exits
            time.sleep(3.5)
            server.start()
            doc = wait_for(client, job_id, finished, 180)
        assert_same_curves(reference, doc)
        # Carried on: the same attempt finished each run, nothing restarted or failed.
        assert [r["attempt"] for r in doc["runs"]] == [1, 1]
        assert all(r["resumed_from_step"] is None for r in doc["runs"])
        assert worker.alive()
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A redis-server of the test's own (its queue and command counts are the test's), and a
    client of it."""
    import redis

    server = EmbeddedRedis(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    try:
        yield server.url, client
    finally:
        client.close()
        server.stop()


def watchdog_env(url: str, resend_seconds: float, interval: float) -> dict[str, str]:
    """Redis at ``url``; a watchdog every ``interval`` looking at runs queued over
    ``resend_seconds``."""
    return {
        "INITLAB_REDIS_URL": url,
        "INITLAB_QUEUED_RESEND_SECONDS": str(resend_seconds),
        "INITLAB_WATCHDOG_INTERVAL_SECONDS": str(interval),
    }


def test_queued_runs_are_resent_only_when_their_message_is_gone(
    own_redis: tuple[str, Any], start_api: Callable[..., Any], start_worker: Callable[..., Any]
) -> None:
    from app.jobs.keys import QUEUED_KEY, member, run_key
    from app.jobs.queue import QUEUE, runs_in_broker

    url, client = own_redis
    # A watchdog that looks every 0.5 s at runs queued over 1 s, on a worker that does not
    # take from the runs' queue: they wait there, as behind a backlog.
    env = watchdog_env(url, 1, 0.5)
    api = start_api(env=env)
    start_worker(concurrency=1, queues=["elsewhere"], env=env)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        job_id = submit(http)
    runs = {(job_id, 0), (job_id, 1)}
    sent = time.time()

    def looked_at_twice() -> bool:  # each run's next look pushed out at least twice
        scores = [client.zscore(QUEUED_KEY, member(*run)) or 0 for run in runs]
        return all(score > sent + 2.5 for score in scores)

    deadline = time.monotonic() + 30
    while not looked_at_twice():
        assert time.monotonic() < deadline, "the watchdog never looked at the queued runs"
        time.sleep(0.2)
    assert client.llen(QUEUE) == 2 and runs_in_broker(client, 60) == runs
    assert [client.hget(run_key(*run), "resends") for run in sorted(runs)] == [b"0", b"0"]

    # One message is lost (as with a crash): that run, and only it, is sent again.
    lost = client.lpop(QUEUE)
    assert lost is not None and runs_in_broker(client, 60) != runs
    deadline = time.monotonic() + 30
    while runs_in_broker(client, 60) != runs:
        assert time.monotonic() < deadline, "the lost message was never sent again"
        time.sleep(0.2)
    assert client.llen(QUEUE) == 2
    resends = sorted(int(client.hget(run_key(*run), "resends") or 0) for run in runs)
    assert resends == [0, 1]


def test_no_false_takeover_of_live_runs_on_a_loaded_machine(
    api_server: str, start_worker: Callable[..., Any]
) -> None:
    """Default lease (10 s) and watchdog (2 s); the cores oversubscribed by four busy processes
    while the runs train (about 30 s on the 2-core VM: several leases): every run finishes on
    its first attempt, none re-enqueued."""
    import subprocess
    import sys

    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(4)
    ]
    try:
        worker = start_worker(concurrency=2)
        with httpx.Client(base_url=api_server, timeout=30) as client:
            job_id = submit(client, steps=40_000)
            doc = wait_for(client, job_id, finished, 600)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)
    assert doc["status"] == "succeeded", doc["error"]
    assert [r["attempt"] for r in doc["runs"]] == [1, 1]
    assert [r["requeues"] for r in doc["runs"]] == [0, 0]
    assert "re-enqueued" not in worker.log()


def test_a_backlog_sends_one_message_per_run(
    own_redis: tuple[str, Any], start_api: Callable[..., Any], start_worker: Callable[..., Any]
) -> None:
    """12 runs queued behind each other on one worker of concurrency 1, its watchdog looking
    every 0.2 s at runs queued over 0.5 s: each run waits through several resend periods, and
    still only its one message is sent (kombu sends each with one LPUSH; the server is the
    test's own, so its command counts are this job's)."""
    from app.jobs.keys import QUEUED_KEY

    url, client = own_redis
    env = watchdog_env(url, 0.5, 0.2)
    api = start_api(env=env)
    worker = start_worker(concurrency=1, env=env)
    spec = {**job_spec(steps=1000), "schemes": job_spec()["schemes"][:1], "repeats": 12}
    before = client.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    postponed: set[bytes] = set()  # runs the watchdog found waiting and left alone
    with httpx.Client(base_url=api.url, timeout=30) as http:
        sent_at = time.time()
        res = http.post("/v1/jobs", json=spec)
        assert res.status_code == 202, res.text
        deadline = time.monotonic() + 300
        while not finished(doc := http.get(f"/v1/jobs/{res.json()['id']}").json()):
            assert time.monotonic() < deadline, doc["status"]
            # A first look is due 0.5 s after the send; one that found the message
            # waiting pushed the next look past sent_at + 1.
            scored = client.zrangebyscore(QUEUED_KEY, sent_at + 1.0, "+inf")
            postponed.update(scored)
            time.sleep(0.1)
    assert doc["status"] == "succeeded", doc["error"]
    assert len(postponed) >= 6  # the backlog was real: half the runs waited and were seen
    sent = client.info("commandstats")["cmdstat_lpush"]["calls"] - before
    assert sent == len(doc["runs"]) == 12, worker.log()[-3000:]
    assert [r["attempt"] for r in doc["runs"]] == [1] * 12
    assert "re-sent" not in worker.log()
