"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import JobStoreDep
from app.jobs import service

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Redis or workers unavailable"}})
def read_readiness(jobs: JobStoreDep) -> dict[str, Any]:
    """Redis reachable and at least one worker answering (its heartbeat); 503 otherwise."""
    return service.readiness(jobs)
