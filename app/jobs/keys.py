"""The ``initlab:`` Redis keys, and the one ``KEYS`` layout every job script takes.

Keys (every key of a job expires with the job's TTL, refreshed on each write):

- ``initlab:job:{id}``                 hash: spec, owner, status, timestamps, run counters
  (``runs_total``, ``runs_done``, ``runs_failed``, ``runs_cancelled``), error, ``writes``
  (bumped by every run finish and the cancel: a kept report is fresh only at the same count)
- ``initlab:job:{id}:run:{i}``         hash: one (scheme, repeat) run: status, attempt, epoch,
  batch, final (JSON), seconds, worker, error, enqueued_at, resends; ``write_seq`` (the
  attempt's last applied progress write), ``published_step`` / ``published_epoch`` (how far
  the event stream shows it, kept across attempts), ``finish_written`` (a cancelled run's
  finish was written)
- ``initlab:job:{id}:run:{i}:loss``    list: JSON chunks ``[[step, loss], ...]`` of batch losses
- ``initlab:job:{id}:run:{i}:epochs``  list: one JSON epoch record per item (append-only)
- ``initlab:job:{id}:run:{i}:diag``    list: JSON ``[when, layers]`` diagnostics snapshots
- ``initlab:job:{id}:run:{i}:checkpoint``  hash: the run's last checkpoint while it runs
  (``data``: ``app.training.checkpoint`` bytes; ``step``, ``epoch``, ``epochs_done``; the
  lengths of the loss, epochs and diag lists when it was taken), deleted when the run ends
- ``initlab:job:{id}:lease:{i}``       string with a short TTL: the worker running run ``i``
- ``initlab:job:{id}:events``          stream (MAXLEN-capped): progress events for SSE
- ``initlab:job:{id}:cancel``          string: present once the job is cancelled
- ``initlab:job:{id}:report``          hash: a finished job's rendered report, ``png`` / ``svg``
  → bytes, and ``writes``: the job's write counter it was rendered at (kept until the job
  expires; dropped if a run writes after all)
- ``initlab:jobs``                     sorted set: every job id by creation time (ids of
  expired jobs are pruned a few at a time on each create, ``initlab:jobs:prune`` the cursor)
- ``initlab:owner:{owner}:jobs``       sorted set: one caller's job ids by creation time (listing)
- ``initlab:running``                  set: ``{id}:{i}`` of runs that are running (watchdog)
- ``initlab:queued``                   sorted set: ``{id}:{i}`` of queued runs, score = when
  the watchdog sends it again if still queued (``queued_resend_seconds`` after each send)
- ``initlab:workers``                  sorted set: worker hostnames, score = heartbeat expiry
  (Redis server time; ``/readyz``)
- ``initlab:dataset:{id}``             hash: an uploaded ``.npz`` and its metadata
- ``initlab:datasets``                 sorted set: upload ids by creation time (pruned
  likewise on each upload, ``initlab:datasets:prune`` the cursor)
- ``initlab:owner:{owner}:datasets``   sorted set: one caller's upload ids by creation time
- ``initlab:owner:{owner}:active``     sorted set: ``{job id}:{runs}`` of the caller's jobs with
  unfinished runs (the queued-runs quota, ``app.jobs.quotas``)
- ``initlab:owner:{owner}:idempotency:{sha256(key)}``  hash: an ``Idempotency-Key``'s body
  fingerprint, job id and state (``app.jobs.idempotency``)
- ``initlab:model:{id}``               string: a posted model's canonical spec and seed (JSON),
  expiring ``model_ttl_seconds`` after its latest POST (``app.jobs.models``)
"""

from __future__ import annotations

from typing import Any

PREFIX = "initlab:"
INDEX_KEY = PREFIX + "jobs"
RUNNING_KEY = PREFIX + "running"
QUEUED_KEY = PREFIX + "queued"
WORKERS_KEY = PREFIX + "workers"
DATASETS_KEY = PREFIX + "datasets"

# How many ids of a global index (jobs, datasets) each create looks at for expired records
# (app.jobs.scripts.PRUNE_INDEX): more than the one it adds, so the index shrinks to the live.
PRUNE_PER_CREATE = 16


def prune_call(index: str, prefix: str, cutoff: float) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of :data:`app.jobs.scripts.PRUNE_INDEX` for ``index`` (its cursor
    kept at ``<index>:prune``), whose records are keyed ``prefix + id`` and can have expired
    only if created at or before ``cutoff``: :data:`PRUNE_PER_CREATE` ids a call."""
    return [index, f"{index}:prune"], [prefix, repr(cutoff), PRUNE_PER_CREATE]


# The KEYS of every job script, in this order: the scripts name them KEYS[JOB], KEYS[RUN], ...
# (``app.jobs.scripts`` defines those Lua constants from this tuple). A script about the job
# as a whole gets run 0's keys in the run slots; the cancel script gets every run's hash
# after the layout (KEYS[#LAYOUT + 1 + i] is run i).
LAYOUT: tuple[str, ...] = (
    "job",
    "run",
    "loss",
    "epochs",
    "diag",
    "lease",
    "events",
    "cancel",
    "report",
    "running",
    "queued",
    "checkpoint",
)


# What every job key starts with (Lua scripts that are given a job id build its key with it).
JOB_KEY_PREFIX = PREFIX + "job:"


def job_key(job_id: str) -> str:
    return f"{JOB_KEY_PREFIX}{job_id}"


def run_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}"


def loss_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}:loss"


def epochs_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}:epochs"


def diag_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:run:{index}:diag"


# A run's checkpoint key is its run key plus this (the cancel script builds it from the run
# hashes it is given).
CHECKPOINT_SUFFIX = ":checkpoint"


def checkpoint_key(job_id: str, index: int) -> str:
    return run_key(job_id, index) + CHECKPOINT_SUFFIX


def lease_key(job_id: str, index: int) -> str:
    return f"{PREFIX}job:{job_id}:lease:{index}"


def events_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:events"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:cancel"


def report_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:report"


def cancel_channel(job_id: str) -> str:
    """The pub/sub channel a cancel is announced on (a run stops at its next batch check)."""
    return f"{PREFIX}job:{job_id}:cancelled"


# What every upload's key starts with (the uploads' Lua builds keys from ids with it).
DATASET_KEY_PREFIX = PREFIX + "dataset:"


def dataset_key(dataset_id: str) -> str:
    return f"{DATASET_KEY_PREFIX}{dataset_id}"


def model_key(model_id: str) -> str:
    return f"{PREFIX}model:{model_id}"


def owner_jobs_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:jobs"


def owner_datasets_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:datasets"


def owner_active_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:active"


def idempotency_key(owner: str, digest: str) -> str:
    return f"{PREFIX}owner:{owner}:idempotency:{digest}"


def member(job_id: str, index: int) -> str:
    """A run's member in the running and queued indexes."""
    return f"{job_id}:{index}"


def parse_member(raw: bytes) -> tuple[str, int]:
    job_id, _, index = raw.decode().rpartition(":")
    return job_id, int(index)


def script_keys(job_id: str, index: int = 0) -> list[str]:
    """The :data:`LAYOUT` keys of run ``index`` of ``job_id``."""
    by_slot = {
        "job": job_key(job_id),
        "run": run_key(job_id, index),
        "loss": loss_key(job_id, index),
        "epochs": epochs_key(job_id, index),
        "diag": diag_key(job_id, index),
        "lease": lease_key(job_id, index),
        "events": events_key(job_id),
        "cancel": cancel_key(job_id),
        "report": report_key(job_id),
        "running": RUNNING_KEY,
        "queued": QUEUED_KEY,
        "checkpoint": checkpoint_key(job_id, index),
    }
    return [by_slot[slot] for slot in LAYOUT]
