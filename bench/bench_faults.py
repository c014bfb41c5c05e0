"""What faults cost a job: a worker killed with SIGKILL mid-job, and a Redis restart mid-job.

Real processes, default settings (lease 10 s, watchdog every 2 s, checkpoints every 5 s at
epoch boundaries): an embedded redis-server with its append-only file on, one uvicorn API,
Celery workers started the plain way (``celery -A worker.celery_app worker``). The job: two
runs of 784-256-128-10 ReLU, Adam, batch 128 on 20,000 Fashion-MNIST-sized synthetic examples
(an uploaded ``.npz``), 12 epochs.

- kill: two workers of concurrency 1; once both runs have a checkpoint, the worker holding
  run 0 is SIGKILLed. Figures: seconds from the kill until run 0 trains again on the other
  worker (its attempt 2 claimed), the steps it did not redo (``resumed_from_step``), and the
  steps it lost (trained after its last checkpoint).
- redis: one worker of concurrency 2; mid-job redis-server is stopped (SIGTERM, the AOF is
  written) and started again 3.5 s later. Figures: whether the runs finished under their
  first attempt, and the job's time against an undisturbed job's.

    .venv/bin/python bench/bench_faults.py [--write]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import ROOT, N, child_env, done, publish, start_api, start_worker, upload, wait

RESULTS = ROOT / "bench" / "results" / "faults.md"


def job(dataset: str, epochs: int) -> dict[str, Any]:
    return {
        "dataset": {"name": "upload", "id": dataset},
        "model": {"hidden_layers": [256, 128], "activation": "relu"},
        "training": {"optimizer": "adam", "batch_size": 128, "epochs": epochs},
        "schemes": [{"label": "He", "initializer": "he_normal"}],
        "repeats": 2,
        "seed": 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    from app.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = EmbeddedRedis(tmp / "redis", persistent=True).start()
        env = child_env(server.url)
        api, client = start_api(env, tmp)
        procs = [api]
        try:
            dataset = upload(client)

            # kill: two workers of concurrency 1
            (w1, n1), (w2, _n2) = start_worker(env, tmp, 1), start_worker(env, tmp, 1)
            procs += [w1, w2]
            job_id = client.post("/v1/jobs", json=job(dataset, args.epochs)).json()["id"]
            doc = wait(
                client, job_id, lambda j: all((r["checkpoint_step"] or 0) > 0 for r in j["runs"])
            )
            run0 = doc["runs"][0]
            victim = w1 if run0["worker"].startswith(n1) else w2
            batch_at_kill = run0["batch"]
            victim.kill()
            killed = time.time()
            doc = wait(
                client,
                job_id,
                lambda j: j["runs"][0]["attempt"] == 2 and j["runs"][0]["status"] == "running",
            )
            restarted = time.time()
            resumed = doc["runs"][0]["resumed_from_step"] or 0
            doc = wait(client, job_id, done)
            kill_figures = {
                "status": doc["status"],
                "to_restart": restarted - killed,
                "resumed_from_step": resumed,
                "lost_steps": batch_at_kill - resumed,
                "total_steps": doc["runs"][0]["total_batches"],
                "attempts": [r["attempt"] for r in doc["runs"]],
            }
            for p in (w1, w2):
                p.kill()

            # redis restart: one worker of concurrency 2
            w3, _ = start_worker(env, tmp, 2)
            procs.append(w3)
            t0 = time.monotonic()
            ref = wait(client, client.post("/v1/jobs", json=job(dataset, 4)).json()["id"], done)
            undisturbed = time.monotonic() - t0
            t0 = time.monotonic()
            job_id = client.post("/v1/jobs", json=job(dataset, 4)).json()["id"]
            wait(client, job_id, lambda j: all(r["batch"] > 200 for r in j["runs"]))
            server.stop()
            time.sleep(3.5)
            server.start()
            doc = wait(client, job_id, done)
            disturbed = time.monotonic() - t0
            same = [r["batch_losses"] for r in doc["runs"]] == [
                r["batch_losses"] for r in ref["runs"]
            ]
            redis_figures = {
                "status": doc["status"],
                "attempts": [r["attempt"] for r in doc["runs"]],
                "undisturbed": undisturbed,
                "disturbed": disturbed,
                "same_curves": same,
            }
        finally:
            for p in reversed(procs):
                p.kill()
            server.stop()
    k, r = kill_figures, redis_figures
    lines = [
        "# Fault benchmark",
        "",
        "Real processes with default settings (lease 10 s, watchdog every 2 s, checkpoints at "
        "epoch boundaries every 5 s): embedded redis-server (AOF on), uvicorn, plain "
        "`celery -A worker.celery_app worker`. Job: 2 runs of 784-256-128-10 ReLU, Adam, "
        f"batch 128, {N:,} synthetic examples (an upload), {args.epochs} epochs (kill) / 4 "
        "epochs (Redis restart). Machine: 2 shared cores.",
        "",
        "| fault | figure | value |",
        "|---|---|---|",
        f"| worker SIGKILLed mid-run | kill → the run trains again on the other worker | "
        f"{k['to_restart']:.1f} s |",
        f"| | resumed from step (of {k['total_steps']}) | {k['resumed_from_step']} |",
        f"| | steps trained again (after the last checkpoint) | {k['lost_steps']} |",
        f"| | job status, attempts per run | {k['status']}, {k['attempts']} |",
        f"| Redis stopped for 3.5 s mid-job | job status, attempts per run | {r['status']}, "
        f"{r['attempts']} |",
        f"| | job time, undisturbed → with the restart | {r['undisturbed']:.1f} s → "
        f"{r['disturbed']:.1f} s |",
        f"| | curves equal the undisturbed job's | {r['same_curves']} |",
    ]
    publish(lines, RESULTS, args.write)


if __name__ == "__main__":
    main()
