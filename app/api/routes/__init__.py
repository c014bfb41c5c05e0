"""Every router of the service, in the order they are mounted (one module per resource)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import (
    datasets,
    health,
    initializers,
    job_outputs,
    jobs,
    metrics,
    presets,
    tensors,
)

ROUTERS: list[APIRouter] = [
    health.router,
    metrics.router,
    initializers.router,
    tensors.router,
    presets.router,
    jobs.router,
    job_outputs.router,
    datasets.router,
]
