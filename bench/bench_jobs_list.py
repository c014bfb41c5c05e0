"""``GET /v1/jobs?status=`` at the store: one page of a caller's jobs filtered by status, when
the matching jobs are few among many others.

An embedded ``redis-server`` (its own port, nothing kept) and ``JobStore`` itself: ``--jobs``
jobs of one owner (default 2,000), of which ``--running`` (default 10) are running, spread
over the index, a third cancelled, the rest queued. Timed (median of ``--reps``):

- the first page of 20 unfiltered;
- the first page of 20 with ``statuses={"running"}`` (every index entry is checked, by one
  pipelined ``HGET status`` per index page, and only the matching jobs are read);
- the same 20 running jobs found as a client did before the filter existed: reading page after
  unfiltered page and keeping the running ones.

    .venv/bin/python bench/bench_jobs_list.py [--jobs N] [--write]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.embedded_redis import EmbeddedRedis  # noqa: E402
from app.jobs.store import JobStore, redis_client  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "jobs_list.md"
OWNER = "bench-owner"
SPEC = {"dataset": {"name": "circles"}, "schemes": [{"label": "He", "initializer": "he_normal"}]}
RUN = {"scheme": 0, "label": "He", "repeat": 0, "seed": 0, "total_batches": 10}


def fill(store: JobStore, n_jobs: int, n_running: int) -> None:
    running = {round(i * n_jobs / n_running) for i in range(n_running)}
    for n in range(n_jobs):
        job_id = store.create_job(SPEC, [RUN], owner=OWNER)["id"]
        if n in running:
            assert store.claim_run(job_id, 0, "bench", 3600).ok
        elif n % 3 == 0:
            store.cancel_job(job_id)


def median_ms(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def client_side(store: JobStore, want: int) -> list[dict]:
    found: list[dict] = []
    cursor = None
    while len(found) < want:
        page, cursor = store.list_jobs(100, cursor, owner=OWNER)
        found += [d for d in page if d["status"] == "running"]
        if cursor is None:
            break
    return found[:want]


def filtered_pages(store: JobStore) -> list[dict]:
    """Every running job, page after filtered page (a page ends after LIST_SCAN_IDS ids)."""
    found: list[dict] = []
    cursor = None
    while True:
        page, cursor = store.list_jobs(20, cursor, owner=OWNER, statuses={"running"})
        found += page
        if cursor is None:
            return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--running", type=int, default=10)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as rds:
        client = redis_client(rds.url)
        store = JobStore(client, ttl_seconds=3600)
        fill(store, args.jobs, args.running)
        assert len(filtered_pages(store)) == args.running
        assert len(client_side(store, 20)) == args.running
        rows = [
            (
                "first page of 20, unfiltered",
                median_ms(lambda: store.list_jobs(20, owner=OWNER), args.reps),
            ),
            (
                f"first page of 20, `statuses={{'running'}}` ({args.running} match)",
                median_ms(
                    lambda: store.list_jobs(20, owner=OWNER, statuses={"running"}), args.reps
                ),
            ),
            (
                f"every filtered page of 20 (one request looks at {JobStore.LIST_SCAN_IDS} ids)",
                median_ms(lambda: filtered_pages(store), args.reps),
            ),
            (
                "the same, by the client: every unfiltered page of 100, kept if running",
                median_ms(lambda: client_side(store, 20), args.reps),
            ),
        ]
        client.close()
    table = "\n".join(f"| {name} | {ms:.1f} ms |" for name, ms in rows)
    text = f"""# The jobs list filtered by status (bench/bench_jobs_list.py)

{platform.machine()}, 2 shared cores (other test runs alongside), Python
{platform.python_version()}, an embedded redis-server; `JobStore.list_jobs` called directly.
{args.jobs:,} jobs of one owner, {args.running} of them running (spread over the index), a third
cancelled, the rest queued. Median of {args.reps}.

| list | time |
|---|---|
{table}
"""
    print(text)
    if args.write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
