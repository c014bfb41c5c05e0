"""Service settings, read from ``INITLAB_*`` environment variables (pydantic-settings).

Read them only through :func:`get_settings` so tests can override them by clearing the cache.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import limits
from pydantic import AfterValidator, AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _rate_limits(text: str) -> str:
    """A rate limit setting: empty, or what ``limits.parse_many`` reads."""
    if text.strip():
        limits.parse_many(text)  # ValueError naming the bad part
    return text


RateLimits = Annotated[str, AfterValidator(_rate_limits)]


# The Redis the API, the workers and the rate limiter use when no URL is configured.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings):
    """All tunables of the API and the workers."""

    model_config = SettingsConfigDict(env_prefix="INITLAB_", extra="ignore")

    # Redis: INITLAB_REDIS_URL, else REDIS_URL. None means "start an embedded one" (CLI only).
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("INITLAB_REDIS_URL", "REDIS_URL")
    )

    # HTTP
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    # INITLAB_API_KEYS: comma-separated (``k1,k2``) or a JSON list. Empty: no authentication.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Request bodies (JSON endpoints) over this many bytes are refused with a 413 while they
    # arrive; dataset uploads have their own limit (max_upload_bytes).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Tensor limits, checked before any allocation.
    max_elements_binary: int = Field(default=16_777_216, ge=1)
    max_elements_json: int = Field(default=4_194_304, ge=1)
    # Orthogonal cost rows*cols*min(rows, cols); QR on 1 BLAS thread: 2048^3 1.2 s, 4096^3 8.7 s.
    max_orthogonal_work: int = Field(default=2048**3, ge=1)
    max_rank: int = Field(default=8, ge=1)
    # Generations above this many elements run in a worker thread, off the event loop.
    threadpool_threshold_elements: int = Field(default=65_536, ge=0)

    # Jobs
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    dataset_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "initlab" / "data")
    allow_downloads: bool = True
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # Job limits and the job machinery (what one job may ask for; how runs report, lease
    # and time out).
    # Submission limits (checked before anything is stored or enqueued).
    max_runs_per_job: int = Field(default=64, ge=1)
    max_epochs: int = Field(default=100_000, ge=1)
    max_steps: int = Field(default=1_000_000, ge=1)
    max_params: int = Field(default=20_000_000, ge=1)
    # Training examples × input features of the dataset a job trains on.
    max_dataset_elements: int = Field(default=200_000_000, ge=1)
    # parameters × examples seen (epochs × n_train, or steps × batch_size), per run and per job.
    max_run_work: int = Field(default=5 * 10**12, ge=1)
    max_total_work: int = Field(default=5 * 10**13, ge=1)
    max_batch_points: int = Field(default=20_000, ge=10)
    # Epoch records (and diagnostics snapshots) one run keeps: a run with more epochs is
    # evaluated every k-th epoch (record.eval_every set automatically, or refused if smaller).
    max_epoch_records: int = Field(default=1_000, ge=10)
    # Estimated memory of one run (activation buffers, parameters and optimizer state, the
    # dataset's arrays), checked at submission.
    max_run_memory_bytes: int = Field(default=2 * 1024**3, ge=1024**2)

    # Execution.
    run_time_limit_seconds: int = Field(default=3_600, ge=5)
    # A running run holds a lease renewed every lease_seconds / 3; when it lapses (worker
    # killed) the watchdog on any live worker puts the run back on the queue: a dead worker's
    # runs restart elsewhere (from their checkpoints) within lease + interval = 12 s. Three
    # renewals must all miss for a false takeover (a loaded machine delays them by far less).
    lease_seconds: float = Field(default=10.0, ge=1.0)
    watchdog_interval_seconds: float = Field(default=2.0, gt=0)
    # A run still queued this long after it was sent (API died mid-submission, broker error,
    # message lost with a killed worker) is sent again by the watchdog; the wait doubles with
    # each resend (up to 64×). Duplicates are harmless: a claimed or finished run is skipped.
    queued_resend_seconds: float = Field(default=60.0, gt=0)
    worker_heartbeat_seconds: float = Field(default=15.0, ge=1.0)
    # Checkpoints of a running run (app.training.checkpoint; kept in Redis next to the run,
    # deleted when it ends): at an epoch boundary once checkpoint_seconds have passed since
    # the last one, within an epoch once checkpoint_within_epoch_seconds have. One larger than
    # max_checkpoint_bytes (at most 512 MiB, Redis's largest value; 0: no checkpoints) is not
    # kept, and the run's record says so. A redelivered run resumes from its checkpoint.
    checkpoint_seconds: float = Field(default=5.0, gt=0)
    checkpoint_within_epoch_seconds: float = Field(default=30.0, gt=0)
    max_checkpoint_bytes: int = Field(default=256 * 1024**2, ge=0, le=512 * 1024**2)
    # A worker's Redis writes are retried on connection errors with exponential backoff
    # (0.05 s doubling up to 2 s): 12 retries ride out about 15 s of Redis being away.
    worker_redis_retries: int = Field(default=12, ge=0, le=100)
    progress_interval_seconds: float = Field(default=0.25, gt=0)
    # A cancel reaches running runs by pub/sub at once; as a fallback (a missed message) each
    # run also reads the cancel flag this often.
    cancel_check_seconds: float = Field(default=1.0, gt=0)
    events_maxlen: int = Field(default=10_000, ge=100)
    # BLAS threads per worker pool process (OPENBLAS/OMP/MKL_NUM_THREADS, worker/celery_app.py);
    # unset: a user-set OPENBLAS_NUM_THREADS, else the usable cores (affinity, cgroup quota)
    # divided by the pool size (--concurrency), at least 1.
    worker_blas_threads: int | None = Field(default=None, ge=1)

    # Uploads, quotas and idempotent submission (uploads: app/jobs/uploads.py, quotas.py,
    # idempotency.py). Uploads parsed at once per API process (more wait, then 503); what one
    # caller may keep (uploads, their bytes) and have waiting or training (runs, over all its
    # jobs), 429 beyond; how long an Idempotency-Key of POST /v1/jobs is remembered.
    max_concurrent_uploads: int = Field(default=2, ge=1)
    # An upload holds its slot while its body arrives: the body must have arrived within
    # upload_body_seconds plus one second per upload_min_bytes_per_second received, else 408
    # (and the slot is freed), so slow clients cannot keep the slots.
    upload_body_seconds: float = Field(default=10.0, gt=0)
    upload_min_bytes_per_second: int = Field(default=32 * 1024, ge=1)
    max_uploads_per_caller: int = Field(default=16, ge=1)
    max_upload_bytes_per_caller: int = Field(default=256 * 1024 * 1024, ge=1024)
    max_queued_runs_per_caller: int = Field(default=256, ge=1)
    idempotency_window_seconds: int = Field(default=24 * 3600, ge=60)

    # API edges (app/api/request_size.py, app/api/ratelimit.py): request-line and header
    # bounds (414 / 431 problem+json), and rate limits per caller and route group in the
    # `limits` notation ("100/minute", "10/second;1000/hour"); empty: that group unlimited.
    max_query_bytes: int = Field(default=32_768, ge=256)
    max_header_bytes: int = Field(default=65_536, ge=1024)
    rate_limit_tensors: RateLimits = ""
    rate_limit_jobs: RateLimits = ""
    rate_limit_uploads: RateLimits = ""
    rate_limit_default: RateLimits = ""

    # Models (app/models, app/jobs/models.py, app/api/routes/models.py): how long a posted
    # spec is kept in Redis (each POST of it starts the TTL again; the weights are regenerated
    # on every GET), and what one model may hold. Each weight is also held to
    # max_elements_binary and max_rank, and the model's orthogonal weights together to
    # max_orthogonal_work.
    model_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    max_model_params: int = Field(default=50_000_000, ge=1)
    max_model_layers: int = Field(default=256, ge=1)
    # A functional graph's depth (layers on its longest input-to-output path) and the size of
    # a posted Keras / TF.js topology (its JSON text, checked before a string is parsed).
    max_model_depth: int = Field(default=256, ge=1)
    max_topology_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list):  # blanks dropped; non-strings left for pydantic to refuse
            stripped = [k.strip() if isinstance(k, str) else k for k in value]
            return [k for k in stripped if k != ""]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` to reload)."""
    return Settings()
