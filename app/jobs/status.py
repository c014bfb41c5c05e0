"""Job and run statuses, and the one test of whether a status is final.

A job goes queued → running (first run claimed) → succeeded | failed (last run finished), or
queued/running → cancelled. A run goes queued → running → succeeded | diverged | failed |
cancelled (and back to queued when its worker is lost). :data:`FINISHED` is the set of final
statuses of both; the Lua scripts (``app.jobs.scripts``) are built from it too.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DIVERGED = "diverged"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Final statuses of jobs and runs (a job is never "diverged", so one set serves both).
FINISHED: frozenset[str] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.CANCELLED}
)


def is_finished(status: str | None) -> bool:
    """Whether a job or run status is final (nothing about it changes any more)."""
    return status in FINISHED
