"""What checkpointing costs a run: 784-256-128-10 ReLU, Adam, batch 128, 20,000 examples.

The issue's workload (synthetic float32 data: timing only; a 2,000-example validation split,
diagnostics on, as a job runs it). One process, a real redis-server with its append-only file
on (as compose runs it), the worker's own reporter (``RedisRunReporter``) as checkpointer. Per
round: one run with checkpoints off (``INITLAB_MAX_CHECKPOINT_BYTES=0``) and one checkpointing
at every epoch boundary (``checkpoint_seconds`` tiny), alternating. Figures: the checkpoint's
size, the time one takes (serialize + flush + the Lua write; measured around each call),
that time as a share of the median epoch, the epoch medians of both runs, and the time to
read one back (``Checkpoint.from_bytes``).

    .venv/bin/python bench/bench_checkpoint.py [--epochs 4] [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from typing import Any

from procs import ROOT, VAL, K, N, publish, synthetic

BATCH = 128
HIDDEN = (256, 128)
RESULTS = ROOT / "bench" / "results" / "checkpoint.md"


def run_once(store: Any, epochs: int, every_epoch: bool) -> dict[str, Any]:

    from app.config import Settings
    from app.jobs.reporter import RedisRunReporter
    from app.jobs.runplan import run_spec_from_dict
    from app.training import train_run
    from app.training.checkpoint import Checkpoint
    from app.training.datasets import Dataset

    a = synthetic()
    data = Dataset("synthetic", "multiclass", a["x_train"], a["y_train"], a["x_val"], a["y_val"], K)
    spec = run_spec_from_dict(
        model={"hidden_layers": list(HIDDEN), "activation": "relu"},
        training={"optimizer": "adam", "batch_size": BATCH, "epochs": epochs},
        kernel_initializer="he_normal",
        seed=0,
    )
    runs = [{"scheme": 0, "label": "he", "repeat": 0, "seed": 0, "total_batches": 1}]
    job_id = store.create_job({"dataset": {"name": "synthetic"}}, runs)["id"]
    claim = store.claim_run(job_id, 0, "bench", 600)
    settings = Settings(
        checkpoint_seconds=1e-6, max_checkpoint_bytes=(512 * 1024**2 if every_epoch else 0)
    )
    reporter = RedisRunReporter(
        store,
        job_id,
        0,
        claim.attempt,
        total_batches=epochs * (N // BATCH + 1),
        plot_n_batches=100,
        max_batch_points=5000,
        settings=settings,
    )
    result = train_run(spec, data, reporter, checkpointer=reporter)
    assert result.status == "succeeded", result.status
    out: dict[str, Any] = {
        "epochs": [float(r["seconds"]) for r in result.epochs],
        "checkpoints": reporter.checkpoints,
        "checkpoint_seconds": reporter.checkpoint_seconds,
    }
    blob = store.get_checkpoint(job_id, 0)
    if blob is not None:
        t = time.perf_counter()
        Checkpoint.from_bytes(blob)
        out["read_seconds"] = time.perf_counter() - t
        out["bytes"] = len(blob)
    store.finish_run(job_id, 0, claim.attempt, "succeeded")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    args = ap.parse_args()

    # The worker's environment defaults (OPENBLAS_THREAD_TIMEOUT), set before NumPy loads.
    import numpy as np
    import redis

    import worker.celery_app  # noqa: F401
    from app.embedded_redis import EmbeddedRedis
    from app.jobs.store import JobStore

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, persistent=True) as server:
        store = JobStore(redis.Redis.from_url(server.url), ttl_seconds=3600)
        plain: list[float] = []
        checked: list[float] = []
        per_checkpoint: list[float] = []
        reads: list[float] = []
        size = 0
        for _ in range(args.rounds):
            plain += run_once(store, args.epochs, False)["epochs"]
            r = run_once(store, args.epochs, True)
            checked += r["epochs"]
            per_checkpoint.append(r["checkpoint_seconds"] / max(1, r["checkpoints"]))
            reads.append(r["read_seconds"])
            size = r["bytes"]
    epoch = statistics.median(plain)
    cost = statistics.median(per_checkpoint)
    lines = [
        "# Checkpoint benchmark",
        "",
        f"784-256-128-10 ReLU, Adam, batch 128, {N:,} synthetic float32 examples "
        f"({N // BATCH + 1} batches per epoch) plus a {VAL:,}-example validation split, "
        "diagnostics on; the worker's reporter as checkpointer, a real redis-server with "
        f"appendonly on. {args.rounds} alternating rounds of {args.epochs} epochs per run "
        "(checkpoints off / a checkpoint at every epoch boundary); the worker module's "
        "environment defaults (`OPENBLAS_THREAD_TIMEOUT=4`, BLAS on the usable cores).",
        f"Machine: {platform.machine()}, shared with other work. NumPy {np.__version__}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| checkpoint size | {size / 1024**2:.2f} MiB |",
        f"| one checkpoint (serialize + flush + Lua write), median | {cost * 1000:.1f} ms |",
        f"| median epoch, checkpoints off | {epoch:.3f} s |",
        f"| median epoch, checkpoint every epoch | {statistics.median(checked):.3f} s |",
        f"| one checkpoint / median epoch | {100 * cost / epoch:.1f} % |",
        f"| reading one back (from_bytes), median | {statistics.median(reads) * 1000:.1f} ms |",
        "",
        "With the default `INITLAB_CHECKPOINT_SECONDS=5` a run of this workload checkpoints "
        "at most every 5 s, so the share is at most "
        f"{100 * cost / max(epoch, 5.0):.1f} % of its time.",
    ]
    publish(lines, RESULTS, args.write)


if __name__ == "__main__":
    main()
