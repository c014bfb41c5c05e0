"""Training-comparison jobs: submit, read, list, cancel (outputs live in ``job_outputs``).

Every job belongs to its caller (``CallerDep``): another caller's job is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from app.api.deps import CallerDep, DatasetStoreDep, JobStoreDep, SettingsDep
from app.jobs import service
from app.schemas.jobs import JobList, JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def json_response(
    doc: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Send a store document as is (orjson; NaN/inf were stored as null)."""
    return Response(
        orjson.dumps(doc), status_code=status_code, media_type="application/json", headers=headers
    )


_EXAMPLE = {
    "dataset": {"name": "circles", "n_train": 300, "n_val": 100, "noise": 0.05},
    "model": {"hidden_layers": [10, 5], "activation": "relu"},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 5},
    "schemes": [
        {"label": "all zeros", "initializer": "zeros"},
        {"label": "He normal", "initializer": "he_normal"},
    ],
    "repeats": 2,
    "seed": 0,
}


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
)
def create_job(
    caller: CallerDep,
    settings: SettingsDep,
    jobs: JobStoreDep,
    uploads: DatasetStoreDep,
    body: Annotated[
        Any,
        Body(
            description="A job spec (see the JobCreate schema in app/schemas/jobs.py and "
            "api.md), or {'preset': name, ...overrides}.",
            examples=[_EXAMPLE, {"preset": "dlai-circles", "repeats": 2}],
        ),
    ],
) -> Response:
    """Submit a comparison job: one run per (scheme, repeat) on the workers."""
    doc = service.submit_job(body, jobs, uploads, owner=caller, settings=settings)
    return json_response(doc, status_code=202, headers={"Location": doc["links"]["self"]})


@router.get("", response_model=JobList)
def list_jobs(
    caller: CallerDep,
    jobs: JobStoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The caller's jobs, newest first (``next_cursor`` pages on)."""
    return json_response(service.list_jobs(jobs, limit, cursor, caller))


@router.get("/{job_id}", response_model=JobRead)
def read_job(job_id: str, caller: CallerDep, jobs: JobStoreDep) -> Response:
    """A job: status, progress, every run's curves and diagnostics, the summary."""
    return json_response(service.read_job(jobs, job_id, caller))


@router.delete("/{job_id}", response_model=JobRead)
def delete_job(job_id: str, caller: CallerDep, jobs: JobStoreDep) -> Response:
    """Cancel a queued or running job; its runs stop within one batch."""
    return json_response(service.cancel_job(jobs, job_id, caller))
