"""Every router of the service, in the order they are mounted (one module per resource)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import BaseRoute

from app.api.routes import (
    dashboard,
    datasets,
    health,
    initializers,
    job_outputs,
    jobs,
    metrics,
    models,
    presets,
    tensors,
)

ROUTERS: list[APIRouter] = [
    # FastAPI tries included routers in order and every miss costs: the probes, then the hot
    # path (3×3 tensors for TF.js clients), then the rest.
    health.router,
    tensors.router,
    metrics.router,
    initializers.router,
    presets.router,
    models.router,
    jobs.router,
    job_outputs.router,
    datasets.router,
    dashboard.router,  # `/` and `/dashboard/…`: the static page, last
]
# Answered without walking the routers (app.api.dispatch.DirectRoutes): the small-tensor path.
DIRECT_ROUTES: list[BaseRoute] = [*tensors.router.routes]
