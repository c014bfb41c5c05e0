"""Jobs on real processes: a job's epoch vs torch, 4 runs on 1 vs 2 workers, POST → first loss.

Everything is real and local: an embedded ``redis-server`` (its own port, nothing on disk),
one ``uvicorn app.main:app``, and Celery worker processes (prefork, concurrency 1 each),
started the documented way, with the worker's own thread defaults (usable cores ÷ worker
processes; ``--blas-threads N`` sets ``OPENBLAS_NUM_THREADS`` instead).

1. A real job's epoch vs torch 2.13 CPU, side by side (``--torch-rounds``, default 5): each
   round runs a one-run job (Fashion-MNIST ``--train-size`` examples, 5,000 validation,
   784-256-128-10 ReLU, Adam, batch 128, ``--epochs`` epochs, diagnostics on as by default)
   on one idle worker, then the same epochs in torch in this process (as many threads as
   cores, ``Adam(fused=True)``, the same training and validation arrays, each epoch a fresh
   permutation gathered by index and a no-grad pass over the validation split, as the job's
   epoch record has). The figure: per round our best epoch ``seconds`` / torch's best.
2. Wall time of one job with 4 runs (the workload above; one scheme × 4 repeats), from the
   POST to ``succeeded``: one worker process; one worker with ``--concurrency 2`` (two pool
   processes); two workers of concurrency 1; ``--compare-threads`` adds one process with one
   BLAS thread.
3. Time from ``POST /v1/jobs`` to the first ``progress`` event in the job's stream (the
   first batch-loss points a client sees over SSE), and to ``running``, over ``--probes``
   small jobs with one idle worker.
4. ``--report-gets`` (default 16) concurrent ``GET /v1/jobs/{id}/report.png`` of one finished
   job: wall time of the whole batch (median of ``--reps`` batches, after one warm-up GET).

    .venv/bin/python bench/bench_jobs.py [--quick] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from app.jobs.store import JobStore, redis_client  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "jobs.md"


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own session, SIGTERM then SIGKILL on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            with suppress(ProcessLookupError):  # pool children or a slow uvicorn
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def start_api(stack: ExitStack, env: dict[str, str], tmp: Path) -> str:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    stack.enter_context(process(cmd, env, tmp / "api.log"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _http("GET", url + "/healthz")[0] == 200:
                return url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the API did not start")


def start_workers(
    stack: ExitStack, n: int, env: dict[str, str], tmp: Path, concurrency: int = 1
) -> list[str]:
    names = []
    for _ in range(n):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        log = tmp / f"{name}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app:celery_app",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            f"--hostname={name}@%h",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
        ]
        stack.enter_context(process(cmd, env, log))
        names.append((name, log))
    deadline = time.monotonic() + 90
    for _name, log in names:
        while " ready." not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
    return [n for n, _ in names]


# ``--dataset blobs``: the same shapes as Fashion-MNIST (784 inputs, 10 classes) from the
# synthetic generator, for machines without the Fashion-MNIST files.
DATASET = {"name": "fashion-mnist"}
BLOBS = {"name": "blobs", "centers": 10, "n_features": 784}


def _thread_env(base_env: dict[str, str], threads: int) -> dict[str, str]:
    """The worker's environment: its own defaults (``threads`` 0), else ``threads`` BLAS
    threads."""
    env = {k: v for k, v in base_env.items() if k not in BLAS_VARS}
    if threads:
        env.update(dict.fromkeys(BLAS_VARS, str(threads)))
    return env


BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def fashion_job(
    train_size: int, epochs: int, repeats: int, seed: int = 0, diagnostics: bool = False
) -> dict[str, Any]:
    return {
        "dataset": {**DATASET, "train_size": train_size, "validation_size": 5000},
        "model": {"hidden_layers": [256, 128], "activation": "relu"},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "batch_size": 128,
            "epochs": epochs,
        },
        "schemes": [{"label": "He normal", "initializer": "he_normal"}],
        "repeats": repeats,
        "seed": seed,
        "record": {"diagnostics": diagnostics},
    }


def wait_done(api: str, job_id: str, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, doc = _http("GET", f"{api}/v1/jobs/{job_id}")
        if doc["status"] in ("succeeded", "failed", "cancelled"):
            return doc
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} not finished after {timeout} s")


def timed_job(api: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    status, doc = _http("POST", f"{api}/v1/jobs", body)
    assert status == 202, doc
    doc = wait_done(api, doc["id"])
    assert doc["status"] == "succeeded", doc["error"]
    return time.perf_counter() - t0, doc


def scaling(args: argparse.Namespace, base_env: dict[str, str], tmp: Path) -> list[dict]:
    rows = []
    # (Celery workers, --concurrency of each, BLAS threads): one process; two pool processes
    # of one worker (its default: a core each); two workers of concurrency 1 (each takes
    # both cores: it cannot know of the other).
    configs = [(1, 1, args.blas_threads), (1, 2, args.blas_threads), (2, 1, args.blas_threads)]
    if args.compare_threads:
        configs.insert(1, (1, 1, 1))
    for n_workers, concurrency, threads in configs:
        env = _thread_env(base_env, threads)
        processes = n_workers * concurrency
        with ExitStack() as stack:
            api = start_api(stack, base_env, tmp)
            start_workers(stack, n_workers, env, tmp, concurrency)
            # Warm-up: every worker process loads (and caches) the dataset once.
            timed_job(api, fashion_job(args.train_size, 1, processes, seed=99))
            walls: list[float] = []
            run_secs: list[float] = []
            for rep in range(args.reps):
                wall, doc = timed_job(api, fashion_job(args.train_size, args.epochs, 4, seed=rep))
                walls.append(wall)
                run_secs += [r["seconds"] for r in doc["runs"]]
            rows.append(
                {
                    "workers": n_workers,
                    "concurrency": concurrency,
                    "blas_threads": threads,
                    "wall": statistics.median(walls),
                    "walls": walls,
                    "run_seconds": statistics.median(run_secs),
                }
            )
            print(
                f"{n_workers} worker(s) × concurrency {concurrency}, BLAS threads "
                f"{threads or 'default'}: 4 runs in {statistics.median(walls):.2f} s "
                f"(median of {len(walls)}: {', '.join(f'{w:.2f}' for w in walls)}), "
                f"run {statistics.median(run_secs):.2f} s (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return rows


def first_progress(args: argparse.Namespace, base_env: dict[str, str], tmp: Path) -> dict:
    store = JobStore(redis_client(base_env["INITLAB_REDIS_URL"]), ttl_seconds=3600)
    to_running, to_progress = [], []
    with ExitStack() as stack:
        api = start_api(stack, base_env, tmp)
        start_workers(stack, 1, _thread_env(base_env, args.blas_threads), tmp)
        timed_job(api, fashion_job(2000, 1, 1, seed=98))  # warm the worker's dataset cache
        for probe in range(args.probes):
            body = fashion_job(2000, 1, 1, seed=probe)
            t0 = time.perf_counter()
            status, doc = _http("POST", f"{api}/v1/jobs", body)
            assert status == 202, doc
            last, running = "0-0", None
            while True:
                events = store.read_events(doc["id"], last, block_ms=5000)
                assert events, "no event within 5 s"
                now = time.perf_counter() - t0
                for entry_id, event in events:
                    last = entry_id
                    if event["type"] == "status" and event.get("status") == "running":
                        running = running or now
                    if event["type"] == "progress":
                        break
                else:
                    continue
                break
            to_running.append(running or now)
            to_progress.append(now)
            wait_done(api, doc["id"])
    return {
        "running": statistics.median(to_running),
        "progress": statistics.median(to_progress),
        "progress_max": max(to_progress),
        "n": len(to_progress),
    }


def torch_epochs(x: Any, y: Any, x_val: Any, y_val: Any, epochs: int, seed: int) -> list[float]:
    """Seconds per epoch of the job's workload in torch: training batches + a validation pass."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )
    try:
        opt = torch.optim.Adam(model.parameters(), lr=0.001, fused=True)
    except (RuntimeError, ValueError):  # fused not on this CPU build
        opt = torch.optim.Adam(model.parameters(), lr=0.001, foreach=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(n))
        for lo in range(0, n, 128):
            idx = order[lo : lo + 128]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = model(x_val)
            float(loss_fn(logits, y_val))
            int((logits.argmax(1) == y_val).sum())
        times.append(time.perf_counter() - t0)
    return times


def versus_torch(args: argparse.Namespace, base_env: dict[str, str], tmp: Path) -> dict:
    """Rounds of (one-run job, the same epochs in torch): per round best / best."""
    import numpy as np
    import torch

    from app.config import get_settings
    from app.training.datasets import load_dataset

    torch.set_num_threads(os.cpu_count() or 1)
    body = fashion_job(args.train_size, args.epochs, 1, diagnostics=True)
    data = load_dataset(body["dataset"], data_dir=get_settings().data_dir, allow_downloads=False)
    tensors = [
        torch.from_numpy(np.ascontiguousarray(a))
        for a in (data.x_train, data.y_train.astype(np.int64), data.x_val)
    ]
    y_val = torch.from_numpy(data.y_val.astype(np.int64))
    ours, theirs, ratios = [], [], []
    with ExitStack() as stack:
        api = start_api(stack, base_env, tmp)
        start_workers(stack, 1, _thread_env(base_env, args.blas_threads), tmp)
        timed_job(api, fashion_job(args.train_size, 1, 1, seed=99))  # the dataset, once
        for rnd in range(args.torch_rounds):
            _, doc = timed_job(api, {**body, "seed": rnd})
            mine = [e["seconds"] for e in doc["runs"][0]["epochs"]]
            t = torch_epochs(*tensors, y_val, args.epochs, seed=rnd)
            ours += mine
            theirs += t
            ratios.append(min(mine) / min(t))
            print(
                f"round {rnd}: job best epoch {min(mine):.3f} s, torch {min(t):.3f} s, "
                f"ratio {ratios[-1]:.2f} (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return {"ours": ours, "torch": theirs, "ratios": ratios, "load": os.getloadavg()[0]}


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def _get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=120) as resp:
        resp.read()
        return int(resp.status)


def report_gets(args: argparse.Namespace, base_env: dict[str, str], tmp: Path) -> dict:
    """``--report-gets`` concurrent GETs of a finished job's PNG: the wall time of each batch."""
    with ExitStack() as stack:
        api = start_api(stack, base_env, tmp)
        start_workers(stack, 1, _thread_env(base_env, args.blas_threads), tmp)
        body = {**fashion_job(2000, 2, 2, seed=97), "record": {"plot_n_batches": 20}}
        _, doc = timed_job(api, body)
        url = f"{api}/v1/jobs/{doc['id']}/report.png"
        assert _get_status(url) == 200  # warm-up (and, with a kept report, its only render)
        walls = []
        with ThreadPoolExecutor(args.report_gets) as pool:
            for _ in range(args.reps):
                t0 = time.perf_counter()
                codes = list(pool.map(_get_status, [url] * args.report_gets))
                walls.append(time.perf_counter() - t0)
                assert codes == [200] * args.report_gets, codes
    return {"n": args.report_gets, "wall": statistics.median(walls), "walls": walls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument(
        "--blas-threads", type=int, default=0, help="BLAS threads per worker (0: its default)"
    )
    parser.add_argument("--torch-rounds", type=int, default=5)
    parser.add_argument(
        "--torch-only", action="store_true", help="only part 1 (printed, nothing written)"
    )
    parser.add_argument("--report-gets", type=int, default=16)
    parser.add_argument("--dataset", choices=["fashion-mnist", "blobs"], default="fashion-mnist")
    parser.add_argument(
        "--compare-threads",
        action="store_true",
        help="also 1 worker with one BLAS thread",
    )
    parser.add_argument("--quick", action="store_true", help="smaller figures, for a smoke run")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    if args.dataset == "blobs":
        DATASET.clear()
        DATASET.update(BLOBS)
    if args.quick:
        args.train_size, args.epochs, args.reps, args.probes = 5_000, 1, 1, 3
        args.torch_rounds = 1
    with tempfile.TemporaryDirectory() as tmp_dir, EmbeddedRedis(Path(tmp_dir) / "redis") as rds:
        tmp = Path(tmp_dir)
        base_env = {
            **os.environ,
            "INITLAB_REDIS_URL": rds.url,
            "PYTHONUNBUFFERED": "1",
            "INITLAB_ALLOW_DOWNLOADS": "false",
            "KERAS_BACKEND": "numpy",
        }
        base_env.pop("REDIS_URL", None)
        versus = versus_torch(args, base_env, tmp) if args.torch_rounds else None
        if versus is not None and args.torch_only:
            r = versus["ratios"]
            print(f"job / torch, best epoch per round: median {statistics.median(r):.2f}")
            return
        rows = scaling(args, base_env, tmp)
        probe = first_progress(args, base_env, tmp)
        reports = report_gets(args, base_env, tmp)
    print(
        f"POST → running {probe['running'] * 1000:.0f} ms, → first progress "
        f"{probe['progress'] * 1000:.0f} ms (median of {probe['n']}; max "
        f"{probe['progress_max'] * 1000:.0f} ms)"
    )
    print(
        f"{reports['n']} concurrent GETs of a finished job's report.png: "
        f"{reports['wall']:.2f} s (median of {len(reports['walls'])})"
    )
    if args.write:
        write(args, versus, rows, probe, reports)


def write(
    args: argparse.Namespace,
    versus: dict | None,
    rows: list[dict],
    probe: dict,
    reports: dict,
) -> None:
    one = rows[0]
    load = os.getloadavg()[0]
    threads = "the worker's default" if not args.blas_threads else str(args.blas_threads)
    lines = [
        "# Jobs: a job's epoch vs torch, 4 runs on 1 vs 2 workers, POST → first progress",
        "",
        f"Load average when written: {load:.1f} (other processes share the cores, so the figures "
        "are upper bounds).",
        "",
    ]
    if versus is not None:
        r = versus["ratios"]
        lines += [
            f"A real job's epoch vs torch {_torch_version()}, side by side in {len(r)} rounds "
            f"(one worker, BLAS threads: {threads}; torch {os.cpu_count()} threads, fused "
            f"Adam; {args.train_size:,} training + 5,000 validation examples, {args.epochs} "
            "epochs, each epoch's validation pass on both sides): best epoch "
            f"{min(versus['ours']):.3f} s vs {min(versus['torch']):.3f} s; per round (best / "
            f"best) {', '.join(f'{v:.2f}' for v in r)}, median **{statistics.median(r):.2f}×**; "
            f"medians of all epochs {statistics.median(versus['ours']):.3f} s vs "
            f"{statistics.median(versus['torch']):.3f} s (load average {versus['load']:.1f}).",
            "",
        ]
    lines += [
        f"`bench/bench_jobs.py` on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; embedded redis-server, one uvicorn, Celery prefork "
        "workers with concurrency 1.",
        "",
        f"Job: {DATASET['name']} {args.train_size} training examples (5,000 validation), "
        f"784-256-128-10 ReLU, Adam 0.001, batch 128, {args.epochs} epochs, diagnostics off; "
        "one scheme × 4 repeats = 4 runs. Wall time from the POST to `succeeded` (median of "
        f"{args.reps}), after a warm-up job (each worker decodes the dataset once).",
        "",
        "| workers × concurrency | BLAS threads / process | wall, 4 runs (s) | one run (s) "
        "| × one process's wall |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['workers']} × {row['concurrency']} | {row['blas_threads'] or 'default'} "
            f"| {row['wall']:.2f} | {row['run_seconds']:.2f} | {row['wall'] / one['wall']:.2f} |"
        )
    lines += [
        "",
        f"POST `/v1/jobs` → job `running`: {probe['running'] * 1000:.0f} ms; → first "
        f"`progress` event (first batch losses in the stream SSE reads): "
        f"{probe['progress'] * 1000:.0f} ms (median of {probe['n']} one-run jobs on an idle "
        f"worker; max {probe['progress_max'] * 1000:.0f} ms). A run writes its first batch at "
        "once, then at most one progress write per 0.25 s.",
        "",
        f"{reports['n']} concurrent `GET /v1/jobs/{{id}}/report.png` of one finished job "
        f"(2 runs, 2,000 examples, 2 epochs): {reports['wall']:.2f} s for the batch (median of "
        f"{len(reports['walls'])}, after one warm-up GET).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
