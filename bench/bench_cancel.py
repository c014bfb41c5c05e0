"""How soon a cancelled run stops: DELETE → Redis pub/sub → the worker's CancelWatcher → the
trainer's next batch check (``RedisRunReporter.should_stop``).

The qa workload with fast batches: moons 4,000 / 500, 2-64-64-1 ReLU, SGD, batch 50 (80
batches per epoch, ~0.2 ms each). Each run trains in its own process (as a pool process does),
with the worker's own pieces (``CancelWatcher``, ``RedisRunReporter``, ``train_run``) on an
embedded redis-server; this process cancels (``JobStore.cancel_job``, what the API's DELETE
calls) once every run is past batch 3,000, at a different moment of the runs' write cycle each
trial, then reads the job as the DELETE response does. Clock: ``time.monotonic`` (system-wide
on Linux). Figures per run: when the watcher learned of the cancel and when the run stopped
(after the cancel call began), the batches it trained after that moment and after the worker
learned of it, and how far behind the DELETE response's batch was from where the run stopped.

    .venv/bin/python bench/bench_cancel.py [--trials 10] [--runs 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from procs import ROOT, publish

RESULTS = ROOT / "bench" / "results" / "cancel.md"
BODY: dict[str, Any] = {
    "dataset": {"name": "moons", "train_size": 4000, "validation_size": 500},
    "model": {"hidden_layers": [64, 64], "activation": "relu"},
    "training": {
        "optimizer": {"name": "sgd", "learning_rate": 0.05},
        "batch_size": 50,
        "epochs": 1000,
    },
    "schemes": [
        {"label": "glorot", "initializer": "glorot_uniform"},
        {"label": "he", "initializer": "he_normal"},
    ],
    "seed": 11,
    "record": {"plot_n_batches": 100, "max_batch_points": 1000},
}
CANCEL_AFTER_BATCH = 3000


class _TimedEvent(threading.Event):
    """The watcher's event, noting when it is set."""

    set_at: float | None = None

    def set(self) -> None:
        if self.set_at is None:
            self.set_at = time.monotonic()
        super().set()


def train_one(url: str, job_id: str, index: int, out: str) -> None:
    """One run as ``execute_run`` trains it, noting every batch's time and when it stopped."""
    os.environ["INITLAB_REDIS_URL"] = url
    from app.config import get_settings
    from app.jobs.reporter import RedisRunReporter, load_job_dataset
    from app.jobs.runplan import build_run_spec
    from app.jobs.store import JobStore, redis_client
    from app.jobs.watchers import CancelWatcher
    from app.training import train_run

    class Timed(RedisRunReporter):
        batch_times: list[float]
        stopped_at: float | None = None

        def should_stop(self) -> bool:
            stop = super().should_stop()
            if stop and self.stopped_at is None:
                self.stopped_at = time.monotonic()
            return stop

        def on_batch(self, epoch: int, batch: int, loss: float) -> None:
            self.batch_times.append(time.monotonic())
            super().on_batch(epoch, batch, loss)

    settings = get_settings()
    store = JobStore(redis_client(url), ttl_seconds=600)
    claim = store.claim_run(job_id, index, f"bench-{index}", settings.lease_seconds)
    watcher = CancelWatcher(store, job_id, settings.cancel_check_seconds)
    event = _TimedEvent()
    watcher.event = event  # before any cancel: the watcher thread sets this one
    spec, run = store.get_spec(job_id), store.get_run(job_id, index)
    assert claim.ok and spec is not None and run is not None
    reporter = Timed(
        store,
        job_id,
        index,
        claim.attempt,
        total_batches=int(run["total_batches"]),
        plot_n_batches=100,
        max_batch_points=1000,
        settings=settings,
        cancelled=event,
    )
    reporter.batch_times = []
    run_spec = build_run_spec(spec, int(run["scheme"]), int(run["seed"]))
    result = train_run(run_spec, load_job_dataset(spec["dataset"]), reporter)
    status = reporter.finish(str(result.status), seconds=float(result.seconds))
    watcher.close()
    times = reporter.batch_times
    stopped = reporter.stopped_at
    # The worker learns of a cancel from the watcher, or from a write's answer (a progress
    # write refused as cancelled) when that comes first.
    by_write = event.set_at is None or (stopped is not None and stopped < event.set_at)
    Path(out).write_text(
        json.dumps(
            {
                "status": status,
                "learned": stopped if by_write else event.set_at,
                "by_write": by_write,
                "stopped": stopped,
                "batches": times,
                "batch_ms": 1000 * (times[-1] - times[0]) / max(1, len(times) - 1),
            }
        )
    )


def trial(store: Any, settings: Any, n_runs: int, phase: float, tmp: str) -> list[dict[str, Any]]:
    from app.jobs.service import prepare_job
    from app.jobs.uploads import DatasetStore

    body = {**BODY, "schemes": BODY["schemes"][:n_runs]}
    spec, runs = prepare_job(body, DatasetStore(store.redis, ttl_seconds=60), settings)
    job_id = store.create_job(spec, runs)["id"]
    outs = [os.path.join(tmp, f"{job_id}-{i}.json") for i in range(n_runs)]
    spawn = multiprocessing.get_context("spawn")
    procs = [
        spawn.Process(target=train_one, args=(settings.redis_url, job_id, i, outs[i]))
        for i in range(n_runs)
    ]
    for p in procs:
        p.start()
    while True:
        doc = store.get_job(job_id)
        if all(r["batch"] > CANCEL_AFTER_BATCH for r in doc["runs"]):
            break
        time.sleep(0.02)
    time.sleep(phase)  # another moment of the runs' write cycle (every 0.25 s and every epoch)
    cancelled_at = time.monotonic()
    store.cancel_job(job_id)
    answered = store.get_job(job_id)  # what the DELETE response shows
    for p in procs:
        p.join()
    final = store.get_job(job_id)
    rows = []
    for i, out in enumerate(outs):
        r = json.loads(Path(out).read_text())
        rows.append(
            {
                "learned_ms": 1000 * (r["learned"] - cancelled_at),
                "stopped_ms": 1000 * (r["stopped"] - cancelled_at),
                "after": sum(1 for t in r["batches"] if t > cancelled_at),
                # Ended after the worker learned of it: at most the batch in progress.
                "after_learned": sum(1 for t in r["batches"] if t > r["learned"]),
                "behind": final["runs"][i]["batch"] - answered["runs"][i]["batch"],
                "batch_ms": r["batch_ms"],
                "by_write": r["by_write"],
                "status": r["status"],
            }
        )
    return rows


def _spread(values: list[float], fmt: str) -> str:
    return (
        f"{format(min(values), fmt)} / {format(statistics.median(values), fmt)} / "
        f"{format(max(values), fmt)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--runs", type=int, default=2, choices=[1, 2], help="runs (processes) per job")
    ap.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    args = ap.parse_args()

    import numpy as np

    from app.config import Settings
    from app.embedded_redis import EmbeddedRedis
    from app.jobs.store import JobStore, redis_client

    load = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp) as server:
        os.environ["INITLAB_REDIS_URL"] = server.url
        store = JobStore(redis_client(server.url), ttl_seconds=600)
        settings = Settings(redis_url=server.url)
        for i in range(args.trials):
            rows += trial(store, settings, args.runs, 0.3 * i / max(1, args.trials - 1), tmp)
    assert all(r["status"] == "cancelled" for r in rows), rows

    def col(key: str) -> list[float]:
        return [float(r[key]) for r in rows]

    lines = [
        "# Cancel latency benchmark",
        "",
        f"{args.runs} run(s) per job, each in its own process, training 2-64-64-1 ReLU on moons "
        f"(batch 50, {_spread(col('batch_ms'), '.2f')} ms per batch); {args.trials} cancels "
        f"({len(rows)} runs), each once every run was past batch {CANCEL_AFTER_BATCH}. "
        "Times from the moment the cancel call (what DELETE calls) began.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other work (load "
        f"average {load:.1f} before, {os.getloadavg()[0]:.1f} after). "
        f"NumPy {np.__version__}. Default settings (`INITLAB_CANCEL_CHECK_SECONDS=1`, "
        "`INITLAB_PROGRESS_INTERVAL_SECONDS=0.25`).",
        "",
        "| figure (min / median / max) | value |",
        "|---|---|",
        f"| the worker learned of the cancel, ms | {_spread(col('learned_ms'), '.1f')} |",
        f"| ... from a write's answer, not the watcher (pub/sub) | "
        f"{sum(r['by_write'] for r in rows)} of {len(rows)} runs |",
        f"| the run stopped (its next batch check), ms | {_spread(col('stopped_ms'), '.1f')} |",
        f"| batches trained after the cancel call began | {_spread(col('after'), '.0f')} |",
        f"| batches ended after the worker learned of it (the one in progress) | "
        f"{_spread(col('after_learned'), '.0f')} |",
        f"| DELETE response's batch behind where the run stopped | "
        f"{_spread(col('behind'), '.0f')} |",
        "",
        "The watcher thread waits on the pub/sub socket and needs the GIL the training thread "
        "holds between NumPy calls: Python hands it over within its 5 ms switch interval. The "
        "DELETE response's positions are the runs' last progress writes (every 0.25 s and at "
        "each epoch end: 80 batches here), so they lag by up to an epoch; each run's finish "
        "writes where it stopped.",
    ]
    publish(lines, RESULTS, args.write)


if __name__ == "__main__":
    main()
