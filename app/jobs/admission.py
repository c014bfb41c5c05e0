"""Admitting a job submission: the caller's run quota and the ``Idempotency-Key``.

``submit`` wraps :func:`app.jobs.service.submit_job`: the key is reserved with the job's id
before anything else (a replay returns the recorded job at once), the runs are counted against
the caller's quota after validation and before the record is written, and the key is committed
once the job is recorded (see ``app.jobs.idempotency`` for what a crash in between leaves).
"""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.jobs import service
from app.jobs.idempotency import Claim, IdempotencyKeys
from app.jobs.quotas import RunQuota
from app.jobs.status import JobStatus
from app.jobs.store import STORE_ERRORS, JobStore, new_job_id
from app.jobs.uploads import DatasetStore


def submit(
    body: Any,
    jobs: JobStore,
    uploads: DatasetStore,
    *,
    owner: str,
    settings: Settings,
    idempotency_key: str | None = None,
) -> tuple[dict, bool]:
    """Submit ``owner``'s job; returns (job document, whether it is a replay of a job an
    earlier request with ``idempotency_key`` and the same body made)."""
    job_id = new_job_id()
    quota = RunQuota(
        jobs.redis, limit=settings.max_queued_runs_per_caller, ttl_seconds=settings.job_ttl_seconds
    )
    keys = IdempotencyKeys(jobs.redis, window_seconds=settings.idempotency_window_seconds)
    claim = None
    if idempotency_key is not None:
        claim = keys.reserve(owner, idempotency_key, body, job_id)
        if claim.replay:
            return service.read_job(jobs, claim.job_id, owner), True
    admitted: list[int] = []

    def admit(runs: list[dict[str, Any]]) -> None:
        quota.admit(owner, job_id, len(runs))
        admitted.append(len(runs))

    try:
        doc = service.submit_job(
            body, jobs, uploads, owner=owner, settings=settings, job_id=job_id, admit=admit
        )
    except BaseException:
        _settle_failed(jobs, job_id, owner, quota, admitted, keys, claim)
        raise
    if claim is not None:
        keys.commit(claim)
    return doc, False


def _settle_failed(
    jobs: JobStore,
    job_id: str,
    owner: str,
    quota: RunQuota,
    admitted: list[int],
    keys: IdempotencyKeys,
    claim: Claim | None,
) -> None:
    """After a failed submission: free the key and the quota only if the job was not recorded
    (or was cancelled because its runs could not be sent). A job that was recorded though the
    request failed after it (a Redis error once the transaction ran) is queued and will run:
    its key is committed, so the client's retry gets that job, not a second one."""
    try:
        status = jobs.get_status(job_id)
    except STORE_ERRORS:
        return  # Redis unreachable: the key's lease and the quota's reservation lapse by themselves
    if status is None or status == JobStatus.CANCELLED:
        if admitted:
            quota.release(owner, job_id, admitted[0])
        if claim is not None:
            keys.release(claim)
    elif claim is not None:
        keys.commit(claim)
