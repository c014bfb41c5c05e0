"""Request dependencies, declared once as ``Annotated`` aliases (``SettingsDep``, ...).

Dependencies are ``async`` so that FastAPI calls them inline instead of in a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.auth import get_caller
from app.config import Settings
from app.jobs.models import ModelStore
from app.jobs.store import JobStore
from app.jobs.uploads import DatasetStore


async def get_app_settings(request: Request) -> Settings:
    """The settings the application was built with (``create_app(settings)``)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
# The caller id (app.api.auth): anonymous without INITLAB_API_KEYS, else 401/403 or the key's id.
CallerDep = Annotated[str, Depends(get_caller)]


# --- jobs (one Redis connection pool per application, created on first use)


async def get_job_store(request: Request) -> JobStore:
    """The job record store on the application's Redis."""
    store: JobStore | None = getattr(request.app.state, "job_store", None)
    if store is None:
        store = JobStore.from_settings(request.app.state.settings)
        request.app.state.job_store = store
    return store


async def get_dataset_store(request: Request) -> DatasetStore:
    """Uploaded datasets on the application's Redis (shares the job store's pool)."""
    store: DatasetStore | None = getattr(request.app.state, "dataset_store", None)
    if store is None:
        jobs = await get_job_store(request)
        settings: Settings = request.app.state.settings
        store = DatasetStore.from_settings(settings, jobs.redis)
        request.app.state.dataset_store = store
    return store


async def get_model_store(request: Request) -> ModelStore:
    """Posted model specs on the application's Redis (shares the job store's pool)."""
    store: ModelStore | None = getattr(request.app.state, "model_store", None)
    if store is None:
        jobs = await get_job_store(request)
        settings: Settings = request.app.state.settings
        store = ModelStore(jobs.redis, settings.model_ttl_seconds)
        request.app.state.model_store = store
    return store


JobStoreDep = Annotated[JobStore, Depends(get_job_store)]
DatasetStoreDep = Annotated[DatasetStore, Depends(get_dataset_store)]
ModelStoreDep = Annotated[ModelStore, Depends(get_model_store)]
