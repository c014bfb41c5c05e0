"""From a job spec to the trainer's runs: one :class:`~app.training.spec.RunSpec` per scheme,
its seeds, and the plan the limits are checked on (steps, parameters, memory).

Used at submission (``app.jobs.service``) and by the workers (``app.jobs.reporter``), so it
imports neither the API's submission code nor Redis or Celery. The job spec's fields are the
pydantic models of ``app.schemas.jobs`` (the one definition); this module only maps them onto
the trainer's dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import InvalidInputError
from app.schemas.jobs import (
    MAX_SEED,
    LayerOverride,
    ModelSpec,
    OptimizerSpec,
    RecordSpec,
    SchemeSpec,
    SpecRuleError,
    TrainingSpec,
)
from app.training.activations import Activation
from app.training.network import buffer_bytes
from app.training.optimizers import DEFAULT_LR, DEFAULT_WEIGHT_DECAY
from app.training.optimizers import OptimizerSpec as TrainerOptimizer
from app.training.spec import LayerInit, RunSpec, TrainingSpecError
from app.training.trainer import EVAL_CHUNK

__all__ = [
    "ITEMSIZE",
    "build_run_spec",
    "plan_runs",
    "run_memory",
    "run_seed",
    "run_spec",
    "run_spec_from_dict",
]

# Bytes per value: runs train in float32.
ITEMSIZE = 4

_M = TypeVar("_M", bound=BaseModel)


def run_seed(seed: int, repeat: int) -> int:
    """Seed of repeat ``repeat``. Every scheme of a repeat shares it, so schemes are compared on
    the same batches and dropout masks (only the initializer differs)."""
    return (seed + repeat) % (MAX_SEED + 1)


# ------------------------------------------------------------------------ typed spec → RunSpec


def _activation(ref: str | dict[str, Any]) -> Activation:
    if isinstance(ref, str):
        return Activation(ref)
    return Activation(**ref)


def _optimizer(opt: OptimizerSpec) -> TrainerOptimizer:
    given = {
        k: v
        for k, v in opt.model_dump(exclude={"name", "betas"}).items()
        if v is not None and k not in ("learning_rate", "weight_decay")
    }
    return TrainerOptimizer(
        name=opt.name,
        learning_rate=opt.learning_rate if opt.learning_rate is not None else DEFAULT_LR[opt.name],
        weight_decay=(
            opt.weight_decay if opt.weight_decay is not None else DEFAULT_WEIGHT_DECAY[opt.name]
        ),
        **given,
    )


def _merged_layers(
    model_layers: Sequence[LayerOverride], scheme_layers: Sequence[LayerOverride], n_layers: int
) -> tuple[LayerInit, ...]:
    """The positional per-layer overrides, a scheme's beating the model's field by field."""
    kernels: list[Any] = [None] * n_layers
    biases: list[Any] = [None] * n_layers
    for overrides in (model_layers, scheme_layers):
        for o in overrides:
            if o.kernel_initializer is not None:
                kernels[o.layer] = o.kernel_initializer
            if o.bias_initializer is not None:
                biases[o.layer] = o.bias_initializer
    merged = [LayerInit(k, b) for k, b in zip(kernels, biases, strict=True)]
    while merged and merged[-1] == LayerInit():
        merged.pop()
    return tuple(merged)


def run_spec(
    model: ModelSpec, training: TrainingSpec, record: RecordSpec, scheme: SchemeSpec, seed: int
) -> RunSpec:
    """The trainer's ``RunSpec`` for one scheme of a validated job spec (no further checks:
    the ones that need the dataset are ``RunSpec.check``)."""
    n_layers = len(model.hidden_layers) + 1
    return RunSpec(
        kernel_initializer=(
            scheme.initializer if scheme.initializer is not None else model.kernel_initializer
        ),
        seed=int(seed),
        hidden_layers=tuple(model.hidden_layers),
        activation=_activation(model.activation),
        bias_initializer=(
            scheme.bias_initializer
            if scheme.bias_initializer is not None
            else model.bias_initializer
        ),
        layers=_merged_layers(model.layers, scheme.layers, n_layers),
        dropout=model.dropout,
        output_units=model.output_units,
        loss=training.loss or "auto",
        optimizer=_optimizer(training.optimizer),
        batch_size=None if training.batch_size == "full" else training.batch_size,
        epochs=training.epochs,
        steps=training.steps,
        shuffle=training.shuffle,
        drop_last=training.drop_last,
        eval_every=record.eval_every,
        diagnostics=record.diagnostics,
        diagnostics_batch_size=record.diagnostics_batch_size,
    )


def _field(loc: Sequence[str | int]) -> str:
    """``("model", "hidden_layers", 1)`` → ``"model.hidden_layers[1]"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validated(
    cls: type[_M], data: Any, prefix: Sequence[str], positions: Sequence[int] | None = None
) -> _M:
    """``cls.model_validate(data)``; the first error as a TrainingSpecError naming its field
    (``positions`` maps a ``layers`` list index back to the caller's positional index)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = list(err["loc"])
        rule = (err.get("ctx") or {}).get("error")
        if isinstance(rule, SpecRuleError):
            loc.append(rule.field)
        if positions is not None and len(loc) > 1 and loc[0] == "layers":
            loc[1] = positions[int(loc[1])]
        raise TrainingSpecError(
            _field([*prefix, *loc]) or ".".join(prefix), err.get("input"), err["msg"]
        ) from None


def _indexed(layers: Any, n_layers: int, fld: str) -> tuple[list[dict[str, Any]], list[int]]:
    """A positional list (``null`` or ``{kernel_initializer, bias_initializer}`` per dense
    layer) as the job spec's ``[{layer: i, ...}]``, with the position of each entry."""
    if layers is None:
        return [], []
    if not isinstance(layers, Sequence) or isinstance(layers, str):
        raise TrainingSpecError(fld, layers, "must be a list of objects or nulls")
    if len(layers) > n_layers:
        raise TrainingSpecError(
            fld, len(layers), f"has more entries than the {n_layers} dense layers"
        )
    entries, positions = [], []
    for i, item in enumerate(layers):
        if item is None:
            continue
        if not isinstance(item, Mapping):
            raise TrainingSpecError(f"{fld}[{i}]", item, "must be an object or null")
        entries.append({"layer": i, **item})
        positions.append(i)
    return entries, positions


def run_spec_from_dict(
    *,
    model: Mapping[str, Any],
    training: Mapping[str, Any],
    kernel_initializer: Any,
    seed: int,
    record: Mapping[str, Any] | None = None,
    bias_initializer: Any = None,
    layers: Sequence[Any] | None = None,
) -> RunSpec:
    """A ``RunSpec`` from the job spec's ``model``, ``training`` and ``record`` objects plus one
    scheme (its initializer, bias initializer and a positional ``layers`` list; ``model.layers``
    positional too) — for scripts, benchmarks and tests. Validated by the same models as a job;
    raises :class:`TrainingSpecError` naming the field (``"model.hidden_layers[1]"``)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise TrainingSpecError("seed", seed, "must be an integer in [0, 2**64)")
    for name, obj in (("model", model), ("training", training), ("record", record or {})):
        if not isinstance(obj, Mapping):
            raise TrainingSpecError(name, obj, "must be an object")
    hidden = _validated(ModelSpec, {k: v for k, v in model.items() if k != "layers"}, ["model"])
    n_layers = len(hidden.hidden_layers) + 1
    entries, positions = _indexed(model.get("layers"), n_layers, "model.layers")
    m = _validated(ModelSpec, {**model, "layers": entries}, ["model"], positions)
    entries, positions = _indexed(layers, n_layers, "layers")
    scheme = {"initializer": kernel_initializer, "bias_initializer": bias_initializer}
    s = _validated(SchemeSpec, {**scheme, "layers": entries}, [], positions)
    if s.initializer is None and m.kernel_initializer is None:
        raise TrainingSpecError("initializer", None, "a kernel initializer is required")
    t = _validated(TrainingSpec, dict(training), ["training"])
    keys = ("diagnostics", "diagnostics_batch_size", "eval_every")
    r = _validated(RecordSpec, {k: v for k, v in (record or {}).items() if k in keys}, ["record"])
    return run_spec(m, t, r, s, seed)


def build_run_spec(spec: Mapping[str, Any], scheme_index: int, seed: int) -> RunSpec:
    """The trainer's ``RunSpec`` for one scheme of a (validated, stored) job spec."""
    record = spec.get("record") or {}
    return run_spec(
        _validated(ModelSpec, spec["model"], ["model"]),
        _validated(TrainingSpec, spec["training"], ["training"]),
        _validated(RecordSpec, record, ["record"]),
        # The label names the scheme in reports; the trainer does not read it.
        _validated(
            SchemeSpec,
            {k: v for k, v in spec["schemes"][scheme_index].items() if k != "label"},
            ["schemes", str(scheme_index)],
        ),
        seed,
    )


# ------------------------------------------------------------------------------- the plan


def plan_runs(spec: Mapping[str, Any], info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check every scheme against the dataset (loss/task, output units, initializer shapes)
    and return per scheme ``{params, total_steps, examples, epochs, record_every, memory,
    ...}``; 422 naming the field otherwise."""
    task = str(info.get("task") or "multiclass")
    input_dim = int(info.get("input_dim") or 1)
    n_outputs = int(info.get("n_outputs") or info.get("n_classes") or 1)
    n_train = max(1, int(info.get("n_train") or 1))
    n_val = int(info.get("n_val") or 0)
    plans = []
    for i in range(len(spec["schemes"])):
        try:
            rs = build_run_spec(spec, i, int(spec["seed"]))
            loss = rs.check(task, input_dim, n_outputs)
        except TrainingSpecError as exc:
            field = exc.field
            if field.split(".", 1)[0].split("[", 1)[0] not in ("model", "training", "record"):
                field = f"schemes.{i}.{field}"
            loc: list[str | int] = [
                int(p) if p.isdigit() else p
                for p in field.replace("[", ".").replace("]", "").split(".")
            ]
            raise InvalidInputError(loc, exc.value, exc.msg) from None
        training = spec["training"]
        plans.append(
            {
                "params": rs.parameter_count(input_dim, loss.units),
                "total_steps": rs.total_steps(n_train),
                "examples": rs.total_steps(n_train) * rs.effective_batch_size(n_train),
                "epochs": rs.total_epochs(n_train),
                "record_every": rs.record_every(n_train),
                "memory": run_memory(rs, input_dim, loss.units, n_train, n_val),
                "batch": rs.effective_batch_size(n_train),
                "batch_size": training.get("batch_size"),
                "hidden_layers": list(rs.hidden_layers),
                "n_train": n_train,
                "training_epochs": training.get("epochs"),
                "training_steps": training.get("steps"),
            }
        )
    return plans


def run_memory(rs: RunSpec, input_dim: int, units: int, n_train: int, n_val: int) -> dict[str, int]:
    """Estimated bytes one run holds (float32), by part:

    - ``activations``: the network's work arrays for every batch size the run uses (training
      batches and the last partial one, evaluation chunks, the diagnostics batch);
    - ``parameters``: parameters, gradients, the optimizer's scratch vector and its state
      slots (SGD momentum 1, Adam/AdamW 2, RMSprop 1 + centered + momentum);
    - ``dataset``: both splits (features, targets, labels), the batch gather buffers and the
      loss history.
    """
    sizes = rs.layer_sizes(input_dim, units)
    bs = rs.effective_batch_size(n_train)
    rows = {bs, min(n_val, EVAL_CHUNK), n_val % EVAL_CHUNK}
    if not rs.drop_last:
        rows.add(n_train % bs)
    if rs.diagnostics:
        rows.add(min(n_train, rs.diagnostics_batch_size))
    activations = sum(
        buffer_bytes(sizes, r, dropout=rs.dropout, itemsize=ITEMSIZE) for r in rows if r > 0
    )
    opt = rs.optimizer
    slots = {
        "sgd": int(bool(opt.momentum)),
        "adam": 2,
        "adamw": 2,
        "rmsprop": 1 + int(bool(opt.centered)) + int(bool(opt.momentum)),
    }.get(opt.name, 3)
    params = rs.parameter_count(input_dim, units)
    per_example = (input_dim + units) * ITEMSIZE + 8  # features, targets, an int64 label
    dataset = (n_train + n_val + bs) * per_example + rs.total_steps(n_train) * ITEMSIZE
    return {
        "activations": activations,
        "parameters": params * ITEMSIZE * (3 + slots),
        "dataset": dataset,
    }
