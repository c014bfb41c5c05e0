"""Training-comparison job bodies (``POST /v1/jobs``) and the job document (``GET``).

``JobCreate`` is the body after a preset has been applied (``app.jobs.presets``). Every
initializer reference is resolved with the engine here, so an unknown or invalid scheme is a 422
naming ``schemes.<i>.initializer`` and the value, long before a worker sees it.

These models are the one definition of the job spec: every field, bound and accepted
spelling (``lr`` for ``learning_rate``, ``"Adam"``, a plain ``"sgd"``, Keras loss names) is
here, and is normalized to one canonical form in the stored spec. Numbers and booleans are
held to their JSON types (``JsonInt``, ``JsonFloat``, ``JsonBool``: ``true`` is not 1, ``"7"``
is not 7), and ``/openapi.json`` publishes ``JobCreate``'s JSON Schema as the body of
``POST /v1/jobs``. The name lists come from the trainer (``app.training``: activations,
losses, optimizers and which fields each optimizer reads); ``app.jobs.runplan`` turns a
validated spec into the trainer's ``RunSpec``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.jobs.status import JobStatus, RunStatus
from app.schemas.bounds import (
    MAX_COUNT,
    SEED_MAX,
    JsonBool,
    JsonFloat,
    JsonInt,
    check_json,
    whole_float,
)
from app.training.activations import ACTIVATION_PARAMS, ACTIVATIONS, canonical_activation
from app.training.losses import LOSS_NAMES
from app.training.optimizers import OPTIMIZER_FIELDS, OPTIMIZERS

MAX_SEED = SEED_MAX

InitializerRef = Annotated[
    str | dict[str, Any],
    Field(
        description="Any initializer reference: a name in any framework's spelling, a Keras "
        "or TF.js serialized object, or {name, params}.",
        examples=["he_normal", {"name": "random_uniform", "params": {"minval": -1, "maxval": 1}}],
    ),
    AfterValidator(check_json),
]


def _check_initializer(ref: Any) -> Any:
    """Resolve ``ref`` with the engine; an invalid one becomes a pydantic error at its field."""
    if ref is None:
        return None
    from app.initializers import InitializerError, resolve

    try:
        resolve(ref)
    except InitializerError as exc:
        where = "" if exc.field in ("", "name") else f" ({exc.field})"
        raise ValueError(f"{exc.msg}{where}") from None
    return ref


class SpecRuleError(ValueError):
    """A cross-field rule's error raised inside a model: its loc is the model's, and ``field``
    names the field it blames (``app.jobs.runplan`` reports that one)."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(BaseModel):
    """``{"name": ..., <parameters>}``: the dataset's own parameters are checked by its loader
    (``GET /v1/datasets`` lists them); uploads are ``{"name": "upload", "id": "ds_..."}``."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(
        default=None, min_length=1, max_length=64, examples=["fashion-mnist", "circles"]
    )
    # The loader's parameters: any JSON values, held to the free-form bounds here.
    __pydantic_extra__: dict[str, Annotated[Any, AfterValidator(check_json)]] = Field(init=False)

    @model_validator(mode="after")
    def _upload_implied(self) -> DatasetRef:
        # ``{"id": "ds_..."}`` alone names an upload: the stored spec says so, for the worker.
        if self.name is None and (self.model_extra or {}).get("id") is not None:
            self.name = "upload"
        return self


class LayerOverride(_Strict):
    """Initializers for one dense layer (0-based; the output layer is the last index)."""

    layer: JsonInt = Field(ge=0, le=63)
    kernel_initializer: InitializerRef | None = None
    bias_initializer: InitializerRef | None = None

    _check = field_validator("kernel_initializer", "bias_initializer")(_check_initializer)


class ModelSpec(_Strict):
    hidden_layers: list[Annotated[JsonInt, Field(ge=1, le=65_536)]] = Field(
        default_factory=lambda: [256, 128], max_length=32
    )
    activation: Annotated[str | dict[str, Any], AfterValidator(check_json)] = Field(
        default="relu",
        description=f"One of {', '.join(ACTIVATIONS)}, or {{name: leaky_relu, negative_slope}} "
        "/ {name: elu, alpha}.",
    )
    dropout: JsonFloat = Field(default=0.0, ge=0.0, lt=1.0)
    output_units: JsonInt | None = Field(
        default=None, ge=1, le=65_536, description="Default: from the dataset."
    )
    kernel_initializer: InitializerRef | None = Field(
        default=None, description="Kernels of layers a scheme does not set (schemes win)."
    )
    bias_initializer: InitializerRef = "zeros"
    layers: list[LayerOverride] = Field(
        default_factory=list, max_length=64, description="Per-layer overrides for every scheme."
    )

    _check = field_validator("kernel_initializer", "bias_initializer")(_check_initializer)

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        return normalize_activation(v)


def normalize_activation(ref: str | dict[str, Any]) -> str | dict[str, Any]:
    """``"ReLU"`` → ``"relu"``, ``{"name": "LeakyReLU", "negative_slope": 0.2}`` →
    ``{"name": "leaky_relu", "negative_slope": 0.2}``; ValueError naming what is wrong."""
    name = ref if isinstance(ref, str) else ref.get("name")
    if not isinstance(name, str):
        raise ValueError("must be an activation name or {name, ...params}")
    canon = canonical_activation(name)
    if canon is None:
        raise ValueError(f"unknown activation {name!r}; one of {', '.join(ACTIVATIONS)}")
    if isinstance(ref, str):
        return canon
    params = {k: v for k, v in ref.items() if k != "name"}
    allowed = {p: (lo, open_) for p, lo, open_ in ACTIVATION_PARAMS.get(canon, ())}
    for key, value in params.items():
        if key not in allowed:
            takes = ", ".join(allowed) or "no parameters"
            raise ValueError(f"unknown parameter {key!r} of {canon} (takes {takes})")
        lo, open_ = allowed[key]
        number = _finite(value)
        if number is None or not (number > lo if open_ else number >= lo):
            raise ValueError(f"{key} must be a number {'>' if open_ else '>='} {lo:g}")
        params[key] = number
    return {"name": canon, **params} if params else canon


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class OptimizerSpec(_Strict):
    """An optimizer name (``"adam"``, any case) or ``{name, ...settings}``. Unset settings take
    the optimizer's torch defaults (learning rate: Adam/AdamW 1e-3, SGD/RMSprop 1e-2; AdamW's
    weight decay 0.01). Each optimizer takes only its own settings."""

    name: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    learning_rate: JsonFloat | None = Field(
        default=None, gt=0.0, le=100.0, validation_alias=AliasChoices("learning_rate", "lr")
    )
    weight_decay: JsonFloat | None = Field(default=None, ge=0.0, le=10.0)
    momentum: JsonFloat | None = Field(default=None, ge=0.0, lt=1.0, description="SGD, RMSprop.")
    nesterov: JsonBool | None = Field(default=None, description="SGD only (needs momentum > 0).")
    betas: tuple[JsonFloat, JsonFloat] | None = Field(
        default=None, description="Adam/AdamW: [beta1, beta2] in one field."
    )
    beta1: JsonFloat | None = Field(default=None, ge=0.0, lt=1.0, description="Adam/AdamW.")
    beta2: JsonFloat | None = Field(default=None, ge=0.0, lt=1.0, description="Adam/AdamW.")
    eps: JsonFloat | None = Field(
        default=None, gt=0.0, le=1.0, validation_alias=AliasChoices("eps", "epsilon")
    )
    alpha: JsonFloat | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("alpha", "rho"),
        description="RMSprop smoothing constant (Keras: rho).",
    )
    centered: JsonBool | None = Field(default=None, description="RMSprop.")

    @model_validator(mode="before")
    @classmethod
    def _name_forms(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            data = {**data, "name": data["name"].strip().lower()}
        return data

    @field_validator("momentum", "nesterov", "betas", "beta1", "beta2", "eps", "alpha", "centered")
    @classmethod
    def _own_setting(cls, v: Any, info: ValidationInfo) -> Any:
        name = info.data.get("name")
        field = str(info.field_name)
        if v is None or name is None:
            return v
        uses = OPTIMIZER_FIELDS[name] + (("betas",) if "beta1" in OPTIMIZER_FIELDS[name] else ())
        if field not in uses:
            key = "beta1" if field == "betas" else field
            users = [o for o, fields in OPTIMIZER_FIELDS.items() if key in fields]
            raise ValueError(f"{name} has no {field} (only {', '.join(users)})")
        if field == "betas" and not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("each beta must be in [0, 1)")
        if field in ("beta1", "beta2") and info.data.get("betas") is not None:
            raise ValueError("give betas or beta1/beta2, not both")
        if field == "nesterov" and v and not (info.data.get("momentum") or 0.0) > 0.0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        return v

    @model_validator(mode="after")
    def _split_betas(self) -> OptimizerSpec:
        if self.betas is not None:  # one form in the stored spec
            self.beta1, self.beta2 = self.betas
            self.betas = None
        return self


def _or_optimizer_name(schema: dict[str, Any]) -> None:
    """The JSON Schema of ``training.optimizer``: the object, or the optimizer's name alone."""
    ref = schema.pop("$ref")
    names = ", ".join(OPTIMIZERS)
    schema["anyOf"] = [
        {"$ref": ref},
        {"type": "string", "description": f"An optimizer by name alone ({names}; any case)."},
    ]


class TrainingSpec(_Strict):
    optimizer: OptimizerSpec = Field(
        default_factory=OptimizerSpec, json_schema_extra=_or_optimizer_name
    )
    loss: str | None = Field(
        default=None,
        description=f"One of {', '.join(LOSS_NAMES)}; default (auto): from the dataset's task "
        "(cross_entropy: softmax for multiclass, sigmoid for binary; mse for regression).",
    )
    batch_size: Annotated[JsonInt, Field(ge=1, le=MAX_COUNT)] | Literal["full"] | None = Field(
        default=128, description="Examples per step; 'full' (or null) for full-batch descent."
    )
    epochs: JsonInt | None = Field(
        default=None, ge=1, le=MAX_COUNT, description="Default 1 (unless steps)."
    )
    steps: JsonInt | None = Field(default=None, ge=1, le=MAX_COUNT)
    shuffle: JsonBool = True
    drop_last: JsonBool = False

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, v: str | None) -> str | None:
        if v is None:
            return None
        canon = LOSS_NAMES.get(v.strip().lower())
        if canon is None:
            raise ValueError(f"unknown loss {v!r}; one of {', '.join(LOSS_NAMES)}")
        return canon

    @field_validator("batch_size", mode="before")
    @classmethod
    def _positive_batch(cls, v: Any) -> Any:
        # One error naming the field, not one per member of the union (int, 'full').
        v = whole_float(v)
        whole = isinstance(v, int) and not isinstance(v, bool)
        if not (v is None or v == "full" or (whole and 1 <= v <= MAX_COUNT)):
            raise ValueError(f"must be an integer in [1, {MAX_COUNT}], or 'full' (or null)")
        return v

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> TrainingSpec:
        if self.epochs is not None and self.steps is not None:
            # A rule over the object (the error's loc is ``training``) that blames ``steps``.
            raise SpecRuleError("steps", "give either epochs or steps, not both")
        if self.epochs is None and self.steps is None:
            self.epochs = 1
        return self


class SchemeSpec(_Strict):
    label: str | None = Field(default=None, max_length=80, description="Default: the initializer.")
    initializer: InitializerRef | None = Field(
        default=None, description="Kernel initializer of every layer (unless overridden)."
    )
    bias_initializer: InitializerRef | None = None
    layers: list[LayerOverride] = Field(default_factory=list, max_length=64)

    _check = field_validator("initializer", "bias_initializer")(_check_initializer)


class RecordSpec(_Strict):
    plot_n_batches: JsonInt = Field(default=100, ge=1, le=100_000)
    max_batch_points: JsonInt = Field(default=5_000, ge=10, le=1_000_000)
    diagnostics: JsonBool = True
    diagnostics_batch_size: JsonInt = Field(default=1024, ge=1, le=1024)
    eval_every: JsonInt | None = Field(
        default=None, ge=1, le=MAX_COUNT, description="Epochs between records."
    )

    @model_validator(mode="after")
    def _points_cover_plot(self) -> RecordSpec:
        if self.max_batch_points < self.plot_n_batches:
            raise ValueError("max_batch_points must be >= plot_n_batches")
        return self


class JobCreate(_Strict):
    """A training comparison: every scheme × every repeat is one run."""

    dataset: DatasetRef
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec
    schemes: list[SchemeSpec] = Field(min_length=1, max_length=256)
    repeats: JsonInt = Field(default=1, ge=1, le=1_000)
    seed: JsonInt | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Default: drawn by the server, returned."
    )
    record: RecordSpec = Field(default_factory=RecordSpec)

    @model_validator(mode="after")
    def _default_labels(self) -> JobCreate:
        given = {s.label for s in self.schemes if s.label is not None}
        for i, scheme in enumerate(self.schemes):
            if scheme.label is None:
                label = default_label(scheme.initializer, i)
                if label in given:  # the same initializer twice: number the copies
                    label = f"{label} (scheme {i})"
                scheme.label = label
                given.add(label)
        return self

    def check_consistency(self) -> None:
        """Cross-field rules, raised as a 422 naming the field (``InvalidInputError``)."""
        from app.errors import InvalidInputError

        n_layers = len(self.model.hidden_layers) + 1
        overrides: list[tuple[list[str | int], list[LayerOverride]]] = [
            (["model"], self.model.layers)
        ]
        overrides += [(["schemes", i], s.layers) for i, s in enumerate(self.schemes)]
        for where, items in overrides:
            for j, o in enumerate(items):
                if o.layer >= n_layers:
                    raise InvalidInputError(
                        [*where, "layers", j, "layer"],
                        o.layer,
                        f"out of range: the network has {n_layers} dense layers "
                        f"(0..{n_layers - 1}, the output layer last)",
                    )
        seen: dict[str, int] = {}
        for i, scheme in enumerate(self.schemes):
            if scheme.initializer is None and self.model.kernel_initializer is None:
                covered = {o.layer for o in scheme.layers if o.kernel_initializer is not None}
                covered |= {o.layer for o in self.model.layers if o.kernel_initializer is not None}
                if len(covered) < n_layers:
                    raise InvalidInputError(
                        ["schemes", i, "initializer"],
                        None,
                        "required: some layers have no kernel initializer "
                        "(and there is no model.kernel_initializer)",
                    )
            label = str(scheme.label)
            if label in seen:
                raise InvalidInputError(
                    ["schemes", i, "label"],
                    label,
                    f"duplicate label (also schemes.{seen[label]}.label); labels name the "
                    "schemes in the summary and the report",
                )
            seen[label] = i


def default_label(ref: Any, index: int) -> str:
    """A readable label for a scheme without one."""
    if isinstance(ref, str):
        return ref
    if isinstance(ref, dict):
        name = ref.get("name") or ref.get("class_name") or ref.get("className")
        if isinstance(name, str):
            return name
    return f"scheme {index}"


# -------------------------------------------------------------------------------------------
# Responses (documentation of what GET returns; handlers send the store's documents as is).


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Stats(_Open):
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


class Progress(_Open):
    runs_total: int
    runs_done: int
    runs_cancelled: int = 0
    fraction: float
    eta_seconds: float | None


class EpochRecord(_Open):
    epoch: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float | None = None


class RunRead(_Open):
    index: int
    scheme: int
    label: str
    repeat: int
    seed: int
    status: RunStatus
    epoch: int
    batch: int
    batch_losses: list[float | None] = Field(default_factory=list)
    batch_steps: list[int] = Field(
        default_factory=list, description="Global batch index of each batch_losses entry."
    )
    epochs: list[EpochRecord] = Field(default_factory=list)
    diagnostics: dict[str, Any] = Field(default_factory=dict)
    diverged: bool
    attempt: int
    error: str | None


class SummaryRead(_Open):
    scheme: int
    label: str
    final_val_accuracy: Stats
    final_val_loss: Stats
    last_batch_loss: Stats
    diverged: int
    seconds: float | None
    text: str


class JobRead(_Open):
    id: str
    status: JobStatus
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: Progress
    spec: dict[str, Any]
    runs: list[RunRead] = Field(default_factory=list)
    summary: list[SummaryRead] = Field(default_factory=list)
    error: str | None
    links: dict[str, str]


class JobList(_Open):
    jobs: list[JobRead]
    next_cursor: str | None
