"""Job limits and the tunables of the job machinery (``INITLAB_*`` environment variables).

Kept apart from :mod:`app.config` so the worker and the API share one definition of what a job
may cost. Read only through :func:`get_job_settings` (cached; ``cache_clear()`` to reload).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class JobSettings(BaseSettings):
    """What one job may ask for, and how runs report, lease and time out."""

    model_config = SettingsConfigDict(env_prefix="INITLAB_", extra="ignore")

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

    # Execution.
    run_time_limit_seconds: int = Field(default=3_600, ge=5)
    # A running run holds a lease renewed every lease_seconds / 3; when it lapses (worker
    # killed) the watchdog on any live worker puts the run back on the queue.
    lease_seconds: float = Field(default=30.0, ge=1.0)
    watchdog_interval_seconds: float = Field(default=5.0, gt=0)
    worker_heartbeat_seconds: float = Field(default=15.0, ge=1.0)
    progress_interval_seconds: float = Field(default=0.25, gt=0)
    # A run reads the cancel flag every batch, but at most this often (a GET costs ~50 µs).
    cancel_check_seconds: float = Field(default=0.02, ge=0)
    events_maxlen: int = Field(default=10_000, ge=100)
    # BLAS threads per worker pool process (OPENBLAS/OMP/MKL_NUM_THREADS unless already set).
    # Workers scale over cores with processes (--concurrency); threads on top oversubscribe.
    worker_blas_threads: int = Field(default=1, ge=1)


@lru_cache(maxsize=1)
def get_job_settings() -> JobSettings:
    """The process-wide job settings."""
    return JobSettings()
