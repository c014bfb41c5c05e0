"""Recovery from lost workers and backlogs: broker messages per run, time to restart a dead
worker's run, lease renewals under load.

Real processes: an embedded redis-server of the benchmark's own (so its command counts are the
benchmark's), one uvicorn API, workers started the plain way (``celery -A worker.celery_app
worker``).

- backlog: one job of ``--runs`` (57) short circles runs on one worker of concurrency 1, the
  watchdog looking every 0.5 s at runs queued over 2 s (``INITLAB_QUEUED_RESEND_SECONDS=2``,
  so a run waits through many resend periods); once without a fault, once with the worker
  SIGKILLed mid-backlog and another started. Figures: broker messages sent (the queue's
  ``LPUSH`` calls in Redis's command counts: kombu sends each message with one), against the
  runs and the messages the crash lost (the run the killed worker held).
- restart: default lease (10 s) and watchdog (2 s), two idle workers of concurrency 1; a run
  trains on one, which is SIGKILLed; ``--kills`` times. Figures: seconds from the kill until
  the run is claimed again on the other worker and until it has trained a batch there.
- load: default lease and watchdog; one worker of concurrency 2 training two runs with long
  batches (784-2048-2048-10, batch 4096 on 20,000 examples) while four busy processes
  oversubscribe the cores. The leases' remaining time is read every 50 ms. Figures: the
  longest time between two renewals (lease minus the least remaining time seen), runs taken
  over (attempts, requeues).

    .venv/bin/python bench/bench_recovery.py [--runs 57] [--kills 4] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import ROOT, Proc, child_env, done, publish, start_api, start_worker, upload, wait

RESULTS = ROOT / "bench" / "results" / "recovery.md"
BACKLOG_ENV = {"INITLAB_QUEUED_RESEND_SECONDS": "2", "INITLAB_WATCHDOG_INTERVAL_SECONDS": "0.5"}


def circles_job(runs: int, steps: int) -> dict[str, Any]:
    return {
        "dataset": {"name": "circles", "train_size": 300, "validation_size": 100},
        "model": {"hidden_layers": [32, 32], "activation": "relu"},
        "training": {"optimizer": "adam", "batch_size": 16, "steps": steps},
        "schemes": [{"label": "He", "initializer": "he_normal"}],
        "repeats": runs,
        "seed": 1,
    }


def lpushes(redis: Any) -> int:
    stats: dict[str, Any] = redis.info("commandstats")
    return int(stats.get("cmdstat_lpush", {}).get("calls", 0))


def backlog(tmp: Path, runs: int, crash: bool) -> dict[str, Any]:
    import redis as redis_lib

    from app.embedded_redis import EmbeddedRedis
    from app.jobs.keys import run_key

    server = EmbeddedRedis(tmp / f"redis-backlog-{crash}").start()
    client = redis_lib.Redis.from_url(server.url)
    env = child_env(server.url, **BACKLOG_ENV)
    api, http = start_api(env, tmp)
    procs: list[Proc] = [api]
    try:
        first, _ = start_worker(env, tmp, 1)
        procs.append(first)
        before = lpushes(client)
        t0 = time.monotonic()
        job_id = http.post("/v1/jobs", json=circles_job(runs, 400)).json()["id"]
        lost = 0
        if crash:
            wait(http, job_id, lambda j: j["progress"]["runs_done"] >= runs // 3, every=0.2)
            first.kill()
            lost = 1  # the running run's message (prefetch 1: the only one it held)
            second, _ = start_worker(env, tmp, 1)
            procs.append(second)
        doc = wait(http, job_id, done, every=0.5)
        seconds = time.monotonic() - t0
        resends = sum(int(client.hget(run_key(job_id, i), "resends") or 0) for i in range(runs))
        return {
            "status": doc["status"],
            "runs": runs,
            "messages": lpushes(client) - before,
            "lost": lost,
            "resends": resends,
            "requeues": sum(r["requeues"] for r in doc["runs"]),
            "seconds": seconds,
        }
    finally:
        for p in reversed(procs):
            p.kill()
        client.close()
        server.stop()


def restart(tmp: Path, kills: int) -> list[dict[str, float]]:
    from app.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tmp / "redis-restart").start()
    env = child_env(server.url)
    api, http = start_api(env, tmp)
    workers = {name: proc for proc, name in (start_worker(env, tmp, 1) for _ in range(2))}
    out: list[dict[str, float]] = []
    try:
        for _ in range(kills):
            job_id = http.post("/v1/jobs", json=circles_job(1, 200_000)).json()["id"]
            doc = wait(http, job_id, lambda j: j["runs"][0]["batch"] > 100)
            holder = doc["runs"][0]["worker"].split("@")[0]
            workers.pop(holder).kill()
            killed = time.monotonic()
            doc = wait(http, job_id, lambda j: j["runs"][0]["attempt"] == 2, 60, every=0.05)
            claimed = time.monotonic()
            start = doc["runs"][0]["resumed_from_step"] or 0
            wait(http, job_id, lambda j, s=start: j["runs"][0]["batch"] > s, 60, every=0.05)
            out.append({"claimed": claimed - killed, "training": time.monotonic() - killed})
            assert http.delete(f"/v1/jobs/{job_id}").status_code == 200
            proc, name = start_worker(env, tmp, 1)
            workers[name] = proc
    finally:
        for proc in workers.values():
            proc.kill()
        api.kill()
        server.stop()
    return out


def load(tmp: Path) -> dict[str, Any]:
    import redis as redis_lib

    from app.config import Settings
    from app.embedded_redis import EmbeddedRedis
    from app.jobs.keys import lease_key

    server = EmbeddedRedis(tmp / "redis-load").start()
    client = redis_lib.Redis.from_url(server.url)
    env = child_env(server.url)
    api, http = start_api(env, tmp)
    hogs: list[subprocess.Popen[bytes]] = []
    procs: list[Proc] = [api]
    try:
        dataset = upload(http)
        w, _ = start_worker(env, tmp, 2)
        procs.append(w)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
        spec = {
            "dataset": {"name": "upload", "id": dataset},
            "model": {"hidden_layers": [2048, 2048], "activation": "relu"},
            "training": {"optimizer": "adam", "batch_size": 4096, "epochs": 2},
            "schemes": [{"label": "He", "initializer": "he_normal"}],
            "repeats": 2,
            "seed": 1,
        }
        job_id = http.post("/v1/jobs", json=spec).json()["id"]
        least = [float("inf")] * 2
        doc: dict[str, Any] = {}
        while True:
            for i in range(2):
                ms = client.pttl(lease_key(job_id, i))
                if ms > 0:
                    least[i] = min(least[i], ms / 1000)
            doc = http.get(f"/v1/jobs/{job_id}").json()
            if done(doc):
                break
            time.sleep(0.05)
        lease = Settings().lease_seconds
        return {
            "status": doc["status"],
            "lease": lease,
            "max_gap": max(lease - x for x in least),
            "attempts": [r["attempt"] for r in doc["runs"]],
            "requeues": [r["requeues"] for r in doc["runs"]],
            "batch_seconds": max(r["seconds"] / max(1, r["batch"]) for r in doc["runs"]),
            "reenqueued": "re-enqueued" in w.text(),
        }
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)
        for p in reversed(procs):
            p.kill()
        client.close()
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=57)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--only", choices=("backlog", "restart", "load"), action="append")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    only = set(args.only or ("backlog", "restart", "load"))
    lines = [
        "# Recovery benchmark",
        "",
        "Real processes: an embedded redis-server, uvicorn, plain "
        "`celery -A worker.celery_app worker`. Machine: 2 shared cores.",
    ]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "backlog" in only:
            rows = [backlog(tmp, args.runs, crash) for crash in (False, True)]
            lines += [
                "",
                f"## Backlog: {args.runs} queued runs, one worker of concurrency 1",
                "",
                "Watchdog every 0.5 s, runs queued over 2 s looked at (resend time 2 s).",
                "",
                "| fault | runs | messages sent | target (runs + lost) | resends | requeues "
                "| job time |",
                "|---|---|---|---|---|---|---|",
            ]
            for name, r in zip(("none", "worker SIGKILLed mid-backlog"), rows, strict=True):
                lines.append(
                    f"| {name} | {r['runs']} | {r['messages']} | ≤ {r['runs'] + r['lost']} | "
                    f"{r['resends']} | {r['requeues']} | {r['seconds']:.1f} s ({r['status']}) |"
                )
        if "restart" in only:
            rounds = restart(tmp, args.kills)
            claimed = [r["claimed"] for r in rounds]
            training = [r["training"] for r in rounds]
            lines += [
                "",
                "## Dead worker: kill → the run trains again elsewhere (default lease 10 s, "
                "watchdog 2 s)",
                "",
                "| figure | per kill | median | max |",
                "|---|---|---|---|",
                f"| kill → claimed by the other worker | "
                f"{', '.join(f'{x:.1f}' for x in claimed)} s | "
                f"{statistics.median(claimed):.1f} s | {max(claimed):.1f} s |",
                f"| kill → a batch trained there | "
                f"{', '.join(f'{x:.1f}' for x in training)} s | "
                f"{statistics.median(training):.1f} s | {max(training):.1f} s |",
            ]
        if "load" in only:
            r = load(tmp)
            lines += [
                "",
                "## Lease renewals under load (default lease and watchdog)",
                "",
                "Two runs of 784-2048-2048-10, batch 4096 on 20,000 examples, one worker of "
                "concurrency 2, four busy processes beside it.",
                "",
                "| figure | value |",
                "|---|---|",
                f"| longest batch (run seconds / batches) | {r['batch_seconds']:.2f} s |",
                f"| longest time between two renewals (lease {r['lease']:.0f} s) | "
                f"{r['max_gap']:.2f} s |",
                f"| attempts, requeues per run | {r['attempts']}, {r['requeues']} |",
                f"| job status; a run re-enqueued | {r['status']}; {r['reenqueued']} |",
            ]
    publish(lines, RESULTS, args.write)


if __name__ == "__main__":
    main()
