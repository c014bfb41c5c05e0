"""Service settings, read from ``INITLAB_*`` environment variables (pydantic-settings).

Read them only through :func:`get_settings` so tests can override them by clearing the cache.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All tunables of the API and the workers."""

    model_config = SettingsConfigDict(env_prefix="INITLAB_", extra="ignore")

    # Redis: INITLAB_REDIS_URL, else REDIS_URL. None means "start an embedded one" (CLI only).
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("INITLAB_REDIS_URL", "REDIS_URL")
    )

    # HTTP
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    api_keys: list[str] = Field(default_factory=list)

    # Tensor limits, checked before any allocation.
    max_elements_binary: int = Field(default=16_777_216, ge=1)
    max_elements_json: int = Field(default=4_194_304, ge=1)
    # Orthogonal init costs O(rows * cols * min(rows, cols)); 4096^3 is ~2 s on 2 cores.
    max_orthogonal_work: int = Field(default=4096**3, ge=1)
    max_rank: int = Field(default=8, ge=1)
    # Generations above this many elements run in a worker thread, off the event loop.
    threadpool_threshold_elements: int = Field(default=65_536, ge=0)

    # Jobs
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    dataset_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "initlab" / "data")
    allow_downloads: bool = True
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` to reload)."""
    return Settings()
