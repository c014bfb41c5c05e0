"""Every router of the service, in the order they are mounted (one module per resource)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import health, initializers, metrics, tensors

ROUTERS: list[APIRouter] = [health.router, metrics.router, initializers.router, tensors.router]
