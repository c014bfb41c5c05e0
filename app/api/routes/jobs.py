"""Training-comparison jobs: submit, read, list, cancel (outputs live in ``job_outputs``).

Every job belongs to its caller (``CallerDep``): another caller's job is a 404.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from app.api.bodies import json_body, parse_json
from app.api.deps import CallerDep, DatasetStoreDep, JobStoreDep, SettingsDep
from app.api.openapi import json_request_body
from app.errors import InvalidInputError
from app.jobs import admission, idempotency, service
from app.jobs.presets import PRESETS
from app.schemas.bounds import MAX_JSON_DEPTH, json_problem
from app.schemas.jobs import JobCreate, JobList, JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def json_response(
    doc: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Send a store document as is (orjson; NaN/inf were stored as null)."""
    return Response(
        orjson.dumps(doc), status_code=status_code, media_type="application/json", headers=headers
    )


_EXAMPLE = {
    "dataset": {"name": "circles", "train_size": 300, "validation_size": 100, "noise": 0.05},
    "model": {"hidden_layers": [10, 5], "activation": "relu"},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 5},
    "schemes": [
        {"label": "all zeros", "initializer": "zeros"},
        {"label": "He normal", "initializer": "he_normal"},
    ],
    "repeats": 2,
    "seed": 0,
}


# The other form of the body: a preset by name, with any overrides of its fields.
PRESET_BODY: dict[str, Any] = {
    "type": "object",
    "title": "PresetJob",
    "required": ["preset"],
    "properties": {"preset": {"type": "string", "enum": list(PRESETS)}},
    "additionalProperties": True,
}


# A job spec nests a few levels, and an initializer reference inside it MAX_JSON_DEPTH more.
MAX_BODY_DEPTH = 2 * MAX_JSON_DEPTH


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    responses={
        409: {"description": "A request with this Idempotency-Key is still being processed."},
        413: {"description": "Over a job limit, or a body over the size limit."},
        415: {"description": "A body that is not JSON."},
        422: {
            "description": "Invalid spec (problem+json naming the field and value), or an "
            "Idempotency-Key already used with another body."
        },
        429: {"description": "Over the caller's quota of queued/running runs."},
    },
    openapi_extra=json_request_body(
        JobCreate,
        description="A job spec (JobCreate), or a preset with overrides: "
        '{"preset": name, ...overrides}, the overrides deep-merged over the preset\'s body '
        "(objects merge key by key, lists and values replace) and the result validated as a "
        "JobCreate.",
        alternatives=[PRESET_BODY],
        examples={"spec": _EXAMPLE, "preset": {"preset": "dlai-circles", "repeats": 2}},
    ),
)
async def create_job(
    request: Request,
    caller: CallerDep,
    settings: SettingsDep,
    jobs: JobStoreDep,
    uploads: DatasetStoreDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Makes retries safe: the same key (per caller) and body within "
            "INITLAB_IDEMPOTENCY_WINDOW_SECONDS (default 24 h) return the same job (202, "
            "`Idempotent-Replayed: true`); the same key with another body is a 422, and a "
            "retry while the first request is still being handled a 409. 1-255 printable "
            "ASCII characters, e.g. a UUID (quoted or bare).",
        ),
    ] = None,
) -> Response:
    """Submit a comparison job: one run per (scheme, repeat) on the workers."""
    key = None if idempotency_key is None else idempotency.parse_key(idempotency_key)
    body = parse_json(await json_body(request))
    # Depth only: integers are checked field by field (JobCreate), with the field's bounds.
    problem = json_problem(body, max_depth=MAX_BODY_DEPTH, int64=False)
    if problem is not None:
        raise InvalidInputError(["body"], body, problem)
    submit = functools.partial(
        admission.submit,
        body,
        jobs,
        uploads,
        owner=caller,
        settings=settings,
        idempotency_key=key,
    )
    doc, replayed = await anyio.to_thread.run_sync(submit)
    headers = {"Location": doc["links"]["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(doc, status_code=202, headers=headers)


@router.get("", response_model=JobList)
def list_jobs(
    caller: CallerDep,
    jobs: JobStoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[
        list[str] | None,
        Query(
            description="Only jobs with one of these statuses (queued, running, succeeded, "
            "failed, cancelled): repeated (`status=running&status=queued`) or comma-separated "
            "(`status=running,queued`). Pass the same filter with `cursor` for the next page.",
        ),
    ] = None,
) -> Response:
    """The caller's jobs, newest first (``next_cursor`` pages on), optionally by status."""
    statuses = service.parse_statuses(status)
    return json_response(service.list_jobs(jobs, limit, cursor, caller, statuses))


@router.get("/{job_id}", response_model=JobRead)
def read_job(job_id: str, caller: CallerDep, jobs: JobStoreDep) -> Response:
    """A job: status, progress, every run's curves and diagnostics, the summary."""
    return json_response(service.read_job(jobs, job_id, caller))


@router.delete("/{job_id}", response_model=JobRead)
def delete_job(job_id: str, caller: CallerDep, jobs: JobStoreDep) -> Response:
    """Cancel a queued or running job. A running run stops at its first batch check after its
    worker learns of the cancel (Redis pub/sub: typically a few ms; the batch in progress is
    finished). The response's run positions are their last progress writes, not where they
    stopped: read the job again for those."""
    return json_response(service.cancel_job(jobs, job_id, caller))
