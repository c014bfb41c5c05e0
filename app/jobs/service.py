"""Jobs as the API sees them: submit (preset → validate → limits → record → enqueue), read,
list, cancel, readiness. Routers call only this module; it raises domain errors
(``app.errors``) that render as problem+json.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
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
)
from app.jobs.store import ANONYMOUS, DatasetStore, JobStore
from app.schemas.jobs import MAX_SEED, JobCreate

TASK_NAME = "initlab.train_run"


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
        raise ServiceUnavailableError(f"the job store (Redis) is unavailable: {exc}") from None


def _errors_from(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "input": e.get("input")}
        for e in exc.errors(include_url=False)
    ]


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{loc}: {e['msg']} (got {e.get('input')!r:.120})")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


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
        raise JobSpecError(_describe(errors), errors=errors) from None
    job.check_consistency()
    return job


def check_limits(job: JobCreate, info: Mapping[str, Any], limits: Settings) -> None:
    """Refuse jobs over the structural limits (413, saying the limit and how to get under it)."""
    runs = len(job.schemes) * job.repeats
    if runs > limits.max_runs_per_job:
        raise TooLargeError(
            f"the job has {len(job.schemes)} schemes × {job.repeats} repeats = {runs} runs; "
            f"the limit is {limits.max_runs_per_job} runs per job (fewer repeats or schemes)"
        )
    t = job.training
    if t.epochs is not None and t.epochs > limits.max_epochs:
        raise TooLargeError(
            f"training.epochs is {t.epochs}; the limit is {limits.max_epochs} epochs"
        )
    if t.steps is not None and t.steps > limits.max_steps:
        raise TooLargeError(f"training.steps is {t.steps}; the limit is {limits.max_steps} steps")
    n_train = int(info.get("n_train") or 0)
    input_dim = int(info.get("input_dim") or 0)
    if n_train * input_dim > limits.max_dataset_elements:
        raise TooLargeError(
            f"the dataset has {n_train} training examples × {input_dim} features = "
            f"{n_train * input_dim} values; the limit is {limits.max_dataset_elements} "
            "(use dataset.train_size to train on fewer examples)"
        )


def check_work(plans: list[dict[str, Any]], repeats: int, limits: Settings) -> dict[str, Any]:
    """Parameter count and work (parameters × examples seen) per run and per job (413)."""
    total = 0
    for i, plan in enumerate(plans):
        params, examples = plan["params"], plan["examples"]
        if params > limits.max_params:
            raise TooLargeError(
                f"schemes.{i}: the network has {params} parameters; the limit is "
                f"{limits.max_params} (smaller model.hidden_layers)"
            )
        work = params * examples
        if work > limits.max_run_work:
            raise TooLargeError(
                f"schemes.{i}: one run costs {params} parameters × {examples} examples = "
                f"{work:.3g}; the per-run limit is {limits.max_run_work:.3g} (fewer epochs or "
                "steps, or a smaller model)"
            )
        total += work * repeats
    if total > limits.max_total_work:
        raise TooLargeError(
            f"the job costs {total:.3g} (parameters × examples over all runs); the limit is "
            f"{limits.max_total_work:.3g} (fewer repeats, schemes or epochs, or a smaller model)"
        )
    return {"params": plans[0]["params"], "work": total}


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
        )
    except DatasetUnavailableError as exc:
        raise InvalidInputError(list[str | int](exc.field.split(".")), exc.value, exc.msg) from None
    except DatasetError as exc:
        if exc.field == "dataset.id":
            raise NotFoundError(f"dataset.id: {exc.msg} (got {exc.value!r})") from None
        raise InvalidInputError(list[str | int](exc.field.split(".")), exc.value, exc.msg) from None


def run_seed(seed: int, repeat: int) -> int:
    """Seed of repeat ``repeat``. Every scheme of a repeat shares it, so schemes are compared on
    the same batches and dropout masks (only the initializer differs)."""
    return (seed + repeat) % (MAX_SEED + 1)


def submit_job(
    body: Any,
    store: JobStore,
    uploads: DatasetStore,
    *,
    owner: str = ANONYMOUS,
    settings: Settings | None = None,
    limits: Settings | None = None,
) -> dict:
    """Validate, check limits and the dataset, record the job (owned by ``owner``) and
    enqueue one task per run."""
    settings = settings or get_settings()
    limits = limits or get_settings()
    job = validate_job(body)
    with _redis_available():  # an upload's metadata is read from Redis
        info = check_job_dataset(job, uploads, settings, owner)
    check_limits(job, info, limits)
    if job.seed is None:
        job.seed = secrets.randbelow(MAX_SEED + 1)
    spec = job.model_dump(mode="json")
    plans = plan_runs(spec, info)
    cost = check_work(plans, job.repeats, limits)
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
    with _redis_available():
        doc = store.create_job(spec, runs, owner=owner)
    try:
        for index in range(len(runs)):
            enqueue_run(doc["id"], index)
    except Exception as exc:  # broker down: do not leave a job that will never run
        with _redis_available():
            store.cancel_job(doc["id"])
        raise ServiceUnavailableError(f"the job queue is unreachable: {exc}") from None
    return doc


def _initializer_name(ref: Any) -> str | None:
    if ref is None:
        return None
    from app.initializers import resolve

    return resolve(ref).name


def enqueue_run(job_id: str, index: int) -> None:
    """Send one ``initlab.train_run`` task (by name: the API never imports the trainer)."""
    from worker.celery_app import celery_app

    celery_app.send_task(TASK_NAME, args=[job_id, index])


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


def list_jobs(store: JobStore, limit: int, cursor: str | None, owner: str = ANONYMOUS) -> dict:
    """``owner``'s jobs, newest first."""
    with _redis_available():
        jobs, next_cursor = store.list_jobs(limit, cursor, owner=owner)
    return {"jobs": jobs, "next_cursor": next_cursor}


def cancel_job(store: JobStore, job_id: str, owner: str = ANONYMOUS) -> dict:
    """Cancel ``owner``'s queued or running job (idempotent for a cancelled one); 409 once
    finished, 404 for an unknown or another caller's job."""
    with _redis_available():
        before = store.cancel_job(job_id, owner=owner)
    if before is None:
        raise _no_job(job_id)
    if before in ("succeeded", "failed"):
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


# -------------------------------------------------------------------------------------------
# From the stored spec to the trainer's RunSpec (used at submission to validate, and by workers).


def _positional(overrides: Any, n_layers: int) -> list[dict[str, Any] | None]:
    """``[{layer: i, ...}]`` → the trainer's positional list (None = no override)."""
    out: list[dict[str, Any] | None] = [None] * n_layers
    for o in overrides or []:
        out[o["layer"]] = {k: v for k, v in o.items() if k != "layer" and v is not None}
    while out and out[-1] is None:
        out.pop()
    return out


def build_run_spec(spec: Mapping[str, Any], scheme_index: int, seed: int) -> Any:
    """The trainer's ``RunSpec`` for one scheme of a (validated, stored) job spec.

    Raises ``app.training.TrainingSpecError`` naming the field.
    """
    from app.training.trainer import RunSpec

    model = dict(spec["model"])
    n_layers = len(model["hidden_layers"]) + 1
    model["layers"] = _positional(model.get("layers"), n_layers)
    model = {k: v for k, v in model.items() if v is not None}
    training = dict(spec["training"])
    if training.get("batch_size") == "full":
        training["batch_size"] = None
    training["optimizer"] = {
        k: v for k, v in (training.get("optimizer") or {}).items() if v is not None
    }
    training = {k: v for k, v in training.items() if v is not None or k == "batch_size"}
    record = spec.get("record") or {}
    scheme = spec["schemes"][scheme_index]
    return RunSpec.from_dict(
        model=model,
        training=training,
        kernel_initializer=scheme.get("initializer"),
        seed=seed,
        record={
            k: record[k]
            for k in ("diagnostics", "diagnostics_batch_size", "eval_every")
            if record.get(k) is not None
        },
        bias_initializer=scheme.get("bias_initializer"),
        layers=_positional(scheme.get("layers"), n_layers),
    )


def plan_runs(spec: Mapping[str, Any], info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check every scheme against the dataset (loss/task, output units, initializer shapes)
    and return per scheme ``{params, total_steps}``; 422 naming the field otherwise."""
    from app.training.trainer import TrainingSpecError

    task = str(info.get("task") or "multiclass")
    input_dim = int(info.get("input_dim") or 1)
    n_outputs = int(info.get("n_outputs") or info.get("n_classes") or 1)
    n_train = max(1, int(info.get("n_train") or 1))
    plans = []
    for i in range(len(spec["schemes"])):
        try:
            rs = build_run_spec(spec, i, int(spec["seed"]))
            loss = rs.check(task, input_dim, n_outputs)
        except TrainingSpecError as exc:
            field = exc.field
            if field.split(".", 1)[0].split("[", 1)[0] not in ("model", "training", "record"):
                field = f"schemes.{i}.{field}"
            loc: list[str | int] = [p for p in field.replace("[", ".").replace("]", "").split(".")]
            raise InvalidInputError(loc, exc.value, exc.msg) from None
        plans.append(
            {
                "params": rs.parameter_count(input_dim, loss.units),
                "total_steps": rs.total_steps(n_train),
                "examples": rs.total_steps(n_train) * rs.effective_batch_size(n_train),
            }
        )
    return plans
