"""Jobs as the API sees them: submit (preset → validate → limits → record → enqueue), read,
list, cancel, readiness. Routers call only this module, passing the application's
``Settings``; it raises domain errors (``app.errors``) that render as problem+json. Tasks are
sent through ``app.jobs.queue`` (the API never imports ``worker``).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
from pydantic import ValidationError

from app.config import Settings, get_settings
from app.errors import (
    ConflictError,
    InitlabError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    TooLargeError,
    describe_errors,
)
from app.jobs.queue import send_run
from app.jobs.runplan import plan_runs, run_seed
from app.jobs.status import JobStatus, is_finished
from app.jobs.store import ANONYMOUS, JobStore
from app.jobs.uploads import DatasetStore
from app.schemas.jobs import MAX_SEED, JobCreate


class JobSpecError(InitlabError):
    """A job body that does not validate (422, every error with its field and value)."""

    status = 422
    title = "Invalid input"
    slug = "invalid-input"


@contextmanager
def _redis_available() -> Iterator[None]:
    """Redis down is the service's trouble, not the client's: 503, not 500."""
    try:
        yield
    except redis.RedisError as exc:
        # Not {exc}: redis' message names the server's host and port.
        raise ServiceUnavailableError("the job store (Redis) is unavailable") from exc


def _errors_from(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "input": e.get("input")}
        for e in exc.errors(include_url=False)
    ]


def validate_job(body: Any) -> JobCreate:
    """Apply a preset (``{"preset": name, ...overrides}``) and validate the result."""
    if not isinstance(body, Mapping):
        raise InvalidInputError(["body"], body, "must be a JSON object (the job spec)")
    if "preset" in body:
        from app.jobs.presets import UnknownPresetError, apply_preset

        try:
            body = apply_preset(dict(body))
        except UnknownPresetError as exc:
            raise InvalidInputError(["preset"], exc.value, exc.msg) from None
    try:
        job = JobCreate.model_validate(body)
    except ValidationError as exc:
        errors = _errors_from(exc)
        raise JobSpecError(describe_errors(errors), errors=errors) from None
    job.check_consistency()
    return job


def check_limits(job: JobCreate, info: Mapping[str, Any], settings: Settings) -> None:
    """Refuse jobs over the structural limits (413 naming the field and its value, saying the
    limit and how to get under it)."""
    n_schemes = len(job.schemes)
    runs = n_schemes * job.repeats
    limit = settings.max_runs_per_job
    if runs > limit:
        # Name what is over: the schemes alone, or the repeats that multiplied them past it.
        loc: list[str | int]
        if n_schemes > limit:
            loc, value, how = ["schemes"], n_schemes, f"at most {limit} schemes"
        else:
            loc, value, how = ["repeats"], job.repeats, f"repeats <= {limit // n_schemes}"
        raise TooLargeError(
            f"the job has {n_schemes} schemes × {job.repeats} repeats = {runs} runs; "
            f"the limit is {limit} runs per job ({how})",
            loc=loc,
            value=value,
        )
    t = job.training
    if t.epochs is not None and t.epochs > settings.max_epochs:
        raise TooLargeError(
            f"training.epochs is {t.epochs}; the limit is {settings.max_epochs} epochs",
            loc=["training", "epochs"],
            value=t.epochs,
        )
    if t.steps is not None and t.steps > settings.max_steps:
        raise TooLargeError(
            f"training.steps is {t.steps}; the limit is {settings.max_steps} steps",
            loc=["training", "steps"],
            value=t.steps,
        )
    n_train = int(info.get("n_train") or 0)
    input_dim = int(info.get("input_dim") or 0)
    if n_train * input_dim > settings.max_dataset_elements:
        raise TooLargeError(
            f"the dataset has {n_train} training examples × {input_dim} features = "
            f"{n_train * input_dim} values; the limit is {settings.max_dataset_elements} "
            "(use dataset.train_size to train on fewer examples)",
            loc=["dataset", "train_size"],
            value=n_train,
        )


def check_work(plans: list[dict[str, Any]], repeats: int, settings: Settings) -> dict[str, Any]:
    """Parameter count, memory and work (parameters × examples seen) per run, work per job
    (413 naming the field and its value)."""
    total = 0
    for i, plan in enumerate(plans):
        params, examples = plan["params"], plan["examples"]
        if params > settings.max_params:
            raise TooLargeError(
                f"schemes.{i}: the network has {params} parameters; the limit is "
                f"{settings.max_params} (smaller model.hidden_layers)",
                loc=["model", "hidden_layers"],
                value=plan["hidden_layers"],
            )
        check_memory(plan, settings, i)
        work = params * examples
        if work > settings.max_run_work:
            length = "steps" if plan["training_steps"] is not None else "epochs"
            raise TooLargeError(
                f"schemes.{i}: one run costs {params} parameters × {examples} examples = "
                f"{work:.3g}; the per-run limit is {settings.max_run_work:.3g} (fewer epochs or "
                "steps, or a smaller model)",
                loc=["training", length],
                value=plan[f"training_{length}"],
            )
        total += work * repeats
    if total > settings.max_total_work:
        raise TooLargeError(
            f"the job costs {total:.3g} (parameters × examples over all runs); the limit is "
            f"{settings.max_total_work:.3g} (fewer repeats, schemes or epochs, or a smaller "
            "model)",
            loc=["repeats"],
            value=repeats,
        )
    return {
        "params": plans[0]["params"],
        "work": total,
        "memory_bytes": max(sum(p["memory"].values()) for p in plans),
    }


def check_memory(plan: Mapping[str, Any], settings: Settings, scheme: int = 0) -> None:
    """Refuse a run whose estimated memory (``plan["memory"]``, see
    :func:`app.jobs.runplan.plan_runs`) is over
    ``max_run_memory_bytes``: 413 naming the field behind the largest part."""
    memory = plan["memory"]
    total = sum(memory.values())
    limit = settings.max_run_memory_bytes
    if total <= limit:
        return
    part = max(memory, key=memory.get)
    loc: list[str | int]
    if part == "activations":
        loc, value = ["training", "batch_size"], plan["batch_size"]
        how = "a smaller training.batch_size (or narrower model.hidden_layers)"
    elif part == "parameters":
        loc, value = ["model", "hidden_layers"], plan["hidden_layers"]
        how = "narrower or fewer model.hidden_layers"
    else:
        loc, value = ["dataset", "train_size"], plan["n_train"]
        how = "fewer examples (dataset.train_size)"
    mib = 1024**2
    raise TooLargeError(
        f"schemes.{scheme}: one run needs about {total / mib:,.0f} MiB (activations "
        f"{memory['activations'] / mib:,.0f} MiB for batches of {plan['batch']} rows, "
        f"parameters and optimizer state {memory['parameters'] / mib:,.0f} MiB, dataset "
        f"{memory['dataset'] / mib:,.0f} MiB); the per-run limit is {limit / mib:,.0f} MiB "
        f"(max_run_memory_bytes): use {how}",
        loc=loc,
        value=value,
    )


def cap_records(spec: dict[str, Any], plans: list[dict[str, Any]], settings: Settings) -> None:
    """Keep each run's epoch records (and diagnostics snapshots) under ``max_epoch_records``:
    without ``record.eval_every`` set one that evaluates every k-th epoch; with one that is
    too small, 413 naming it."""
    cap = settings.max_epoch_records
    epochs = max(p["epochs"] for p in plans)
    records = max(math.ceil(p["epochs"] / p["record_every"]) for p in plans)
    if records <= cap:
        return
    need = math.ceil(epochs / cap)
    record = spec.setdefault("record", {})
    if record.get("eval_every") is not None:
        raise TooLargeError(
            f"record.eval_every {record['eval_every']} over {epochs} epochs makes {records} "
            f"epoch records per run; the limit is {cap} (max_epoch_records): use "
            f"record.eval_every >= {need}, or leave it out to get that automatically",
            loc=["record", "eval_every"],
            value=record["eval_every"],
        )
    record["eval_every"] = need
    for plan in plans:
        plan["record_every"] = need


def check_job_dataset(
    job: JobCreate, uploads: DatasetStore, settings: Settings, owner: str = ANONYMOUS
) -> dict:
    """The dataset's summary (sizes, task); 422/404 naming ``dataset.<field>`` otherwise.

    An upload is found only among ``owner``'s own."""
    from app.training.datasets import DatasetError, DatasetUnavailableError, check_dataset

    ref = job.dataset.model_dump(exclude_none=True)
    try:
        return check_dataset(
            ref,
            data_dir=settings.data_dir,
            allow_downloads=settings.allow_downloads,
            uploaded_exists=lambda dataset_id: uploads.meta(dataset_id, owner=owner),
            uploaded=uploads.get,
        )
    except DatasetUnavailableError as exc:
        raise InvalidInputError(list[str | int](exc.field.split(".")), exc.value, exc.msg) from None
    except DatasetError as exc:
        if exc.field == "dataset.id":
            raise NotFoundError(f"dataset.id: {exc.msg} (got {exc.value!r})") from None
        raise InvalidInputError(list[str | int](exc.field.split(".")), exc.value, exc.msg) from None


def prepare_job(
    body: Any, uploads: DatasetStore, settings: Settings, owner: str = ANONYMOUS
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate, check limits and the dataset: the job's stored spec and its runs (one per
    (scheme, repeat)), ready for ``JobStore.create_job``."""
    job = validate_job(body)
    with _redis_available():  # an upload's metadata is read from Redis
        info = check_job_dataset(job, uploads, settings, owner)
    check_limits(job, info, settings)
    if job.seed is None:
        job.seed = secrets.randbelow(MAX_SEED + 1)
    spec = job.model_dump(mode="json")
    plans = plan_runs(spec, info)
    cap_records(spec, plans, settings)
    cost = check_work(plans, job.repeats, settings)
    spec["dataset_info"] = {
        k: info.get(k) for k in ("name", "task", "n_train", "n_val", "input_dim", "n_outputs")
    }
    spec["cost"] = cost
    runs = [
        {
            "scheme": s_index,
            "label": scheme.label,
            "initializer": _initializer_name(scheme.initializer),
            "repeat": repeat,
            "seed": run_seed(job.seed, repeat),
            "total_batches": plans[s_index]["total_steps"],
        }
        for repeat in range(job.repeats)
        for s_index, scheme in enumerate(job.schemes)
    ]
    # Request order within each repeat, so the first results cover every scheme.
    return spec, runs


def submit_job(
    body: Any,
    store: JobStore,
    uploads: DatasetStore,
    *,
    owner: str = ANONYMOUS,
    settings: Settings | None = None,
    job_id: str | None = None,
    admit: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict:
    """Validate and check the job against ``settings`` (the application's; default
    :func:`get_settings`), record it (owned by ``owner``) and send one task per run.

    Runs are recorded as queued before they are sent: if this process dies in between, the
    workers' watchdog sends them (``queued_resend_seconds``)."""
    settings = settings or get_settings()
    spec, runs = prepare_job(body, uploads, settings, owner)
    if admit is not None:  # per-caller quotas (app.jobs.admission), before anything is recorded
        admit(runs)
    with _redis_available():
        doc = store.create_job(spec, runs, owner=owner, job_id=job_id)
    try:
        for index in range(len(runs)):
            send_run(doc["id"], index, settings)
    except Exception as exc:  # broker down: do not leave a job that will never run
        with _redis_available():
            store.cancel_job(doc["id"])
        raise ServiceUnavailableError("the job queue is unreachable") from exc
    return doc


def _initializer_name(ref: Any) -> str | None:
    if ref is None:
        return None
    from app.initializers import resolve

    return resolve(ref).name


def _no_job(job_id: str) -> NotFoundError:
    # Another caller's job reads exactly like an unknown one: ids do not leak.
    return NotFoundError(f"no job {job_id!r} (unknown, or expired after its TTL)")


def read_job(store: JobStore, job_id: str, owner: str = ANONYMOUS) -> dict:
    """``owner``'s job document; 404 for an unknown, expired or another caller's job."""
    with _redis_available():
        doc = store.get_job(job_id, owner=owner)
    if doc is None:
        raise _no_job(job_id)
    return doc


_JOB_STATUSES = frozenset(JobStatus)


def parse_statuses(values: list[str] | None) -> frozenset[str] | None:
    """``?status=`` of ``GET /v1/jobs``: repeated and/or comma-separated job statuses (None
    when absent: every status); an unknown one is a 422 naming ``query.status`` and it."""
    if not values:
        return None
    wanted = [part.strip() for value in values for part in value.split(",")]
    for status in wanted:
        if status not in _JOB_STATUSES:
            raise InvalidInputError(
                ["query", "status"],
                status,
                f"unknown job status {status!r}; one of {', '.join(JobStatus)}, repeated "
                "(status=running&status=queued) or comma-separated (status=running,queued)",
            )
    return frozenset(wanted)


def list_jobs(
    store: JobStore,
    limit: int,
    cursor: str | None,
    owner: str = ANONYMOUS,
    statuses: frozenset[str] | None = None,
) -> dict:
    """``owner``'s jobs, newest first (only those with one of ``statuses``, if given)."""
    with _redis_available():
        jobs, next_cursor = store.list_jobs(limit, cursor, owner=owner, statuses=statuses)
    return {"jobs": jobs, "next_cursor": next_cursor}


def cancel_job(store: JobStore, job_id: str, owner: str = ANONYMOUS) -> dict:
    """Cancel ``owner``'s queued or running job (idempotent for a cancelled one); 409 once
    finished, 404 for an unknown or another caller's job."""
    with _redis_available():
        before = store.cancel_job(job_id, owner=owner)
    if before is None:
        raise _no_job(job_id)
    if is_finished(before) and before != JobStatus.CANCELLED:
        raise ConflictError(f"job {job_id} already {before}; only queued or running jobs cancel")
    return read_job(store, job_id, owner)


def readiness(store: JobStore) -> dict:
    """Redis reachable and at least one worker heartbeat; 503 with the reason otherwise."""
    if not store.ping():
        raise ServiceUnavailableError("Redis is unreachable")
    with _redis_available():
        workers = store.live_workers()
    if not workers:
        raise ServiceUnavailableError("no Celery worker is running (no worker heartbeat)")
    return {"status": "ready", "redis": "ok", "workers": workers}
