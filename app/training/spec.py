"""The trainer's run spec: :class:`RunSpec`, everything one run needs besides the data.

A plain frozen dataclass of already-validated values. The job spec's fields, bounds and
accepted spellings are defined once, by the pydantic models of ``app.schemas.jobs``, and
``app.jobs.runplan`` builds a ``RunSpec`` from them (this package imports no pydantic). What
stays here are the checks that need the dataset (:meth:`RunSpec.check`: loss against task,
output units, every initializer on its layer's shape) and the quantities derived from a spec
(steps, epochs, parameter count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from app.initializers import Initializer, InitializerError, resolve
from app.training.activations import Activation
from app.training.losses import Loss
from app.training.optimizers import OptimizerSpec

__all__ = ["MAX_AUTO_RECORDS", "LayerInit", "RunSpec", "TrainingSpecError"]

MAX_AUTO_RECORDS = 100  # step-based runs evaluate at most about this often unless told


class TrainingSpecError(ValueError):
    """An invalid training spec. ``field`` is the dotted path in the job spec
    (``"training.optimizer.momentum"``), ``value`` the offending value, ``msg`` the reason."""

    def __init__(self, field: str, value: Any, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.value = value
        self.msg = msg


def _initializer(ref: Any, fld: str) -> Initializer:
    try:
        return resolve(ref)
    except InitializerError as exc:
        sub = exc.field
        path = fld if sub in ("", None, "name") else f"{fld}.{sub}"
        raise TrainingSpecError(path, exc.value, exc.msg) from exc


@dataclass(frozen=True)
class LayerInit:
    """Per-layer initializer overrides (``None`` = use the run's default)."""

    kernel_initializer: Any = None
    bias_initializer: Any = None


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs besides the data (validated values).

    Layer ``i`` counts dense layers from the input: hidden layers ``0 .. len(hidden)-1``,
    then the output layer. Initializer references are anything ``app.initializers.resolve``
    accepts; an explicit ``seed`` inside a reference is honoured for that tensor, otherwise
    each tensor's seed derives from ``seed``.
    """

    kernel_initializer: Any
    seed: int
    hidden_layers: tuple[int, ...] = (256, 128)
    activation: Activation = field(default_factory=lambda: Activation("relu"))
    bias_initializer: Any = "zeros"
    layers: tuple[LayerInit, ...] = ()
    dropout: float = 0.0
    output_units: int | None = None
    loss: str = "auto"
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    batch_size: int | None = 128  # None = full batch
    epochs: int | None = 1
    steps: int | None = None
    shuffle: bool = True
    drop_last: bool = False
    eval_every: int | None = None  # epochs between records; None = 1 (epochs) or auto (steps)
    diagnostics: bool = True
    diagnostics_batch_size: int = 1024

    # ------------------------------------------------------------------ derived quantities

    def resolve_loss(self, task: str, n_outputs: int) -> Loss:
        """The loss (and output width) for a dataset's task; TrainingSpecError if they clash."""
        name = self.loss
        if name in ("auto", "cross_entropy"):
            if task == "multiclass":
                name = "softmax_cross_entropy"
            elif task == "binary":
                name = "binary_cross_entropy"
            elif name == "auto":
                name = "mse"
            else:
                raise TrainingSpecError(
                    "training.loss", self.loss, "cross-entropy needs a classification dataset"
                )
        if name == "softmax_cross_entropy":
            if task == "regression":
                raise TrainingSpecError(
                    "training.loss", self.loss, "cross-entropy needs a classification dataset"
                )
            units = n_outputs if task == "multiclass" else 2
        elif name == "binary_cross_entropy":
            if task != "binary":
                raise TrainingSpecError(
                    "training.loss",
                    self.loss,
                    f"binary cross-entropy needs a binary dataset, not {task}",
                )
            units = 1
        else:
            units = n_outputs
        if self.output_units is not None and self.output_units != units:
            raise TrainingSpecError(
                "model.output_units",
                self.output_units,
                f"the {task} dataset with loss {name} needs {units} output units",
            )
        return Loss(name, task, units)

    def layer_sizes(self, input_dim: int, output_units: int) -> tuple[int, ...]:
        return (input_dim, *self.hidden_layers, output_units)

    def parameter_count(self, input_dim: int, output_units: int) -> int:
        """Trainable parameters (kernels + biases) — for submission limits."""
        sizes = self.layer_sizes(input_dim, output_units)
        return sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))

    def effective_batch_size(self, n_train: int) -> int:
        return max(1, min(self.batch_size or n_train, n_train))

    def batches_per_epoch(self, n_train: int) -> int:
        b = self.effective_batch_size(n_train)
        return max(1, n_train // b if self.drop_last else math.ceil(n_train / b))

    def total_steps(self, n_train: int) -> int:
        """Optimizer steps the run will take on ``n_train`` examples (for limits, progress)."""
        if self.steps is not None:
            return self.steps
        return int(self.epochs or 1) * self.batches_per_epoch(n_train)

    def total_epochs(self, n_train: int) -> int:
        return math.ceil(self.total_steps(n_train) / self.batches_per_epoch(n_train))

    def record_every(self, n_train: int) -> int:
        """Epochs between evaluation records (the last epoch is always recorded)."""
        if self.eval_every is not None:
            return self.eval_every
        if self.steps is None:
            return 1
        return max(1, math.ceil(self.total_epochs(n_train) / MAX_AUTO_RECORDS))

    def layer_initializers(self) -> list[tuple[Any, Any]]:
        """(kernel ref, bias ref) per dense layer, overrides applied."""
        out = []
        for i in range(len(self.hidden_layers) + 1):
            o = self.layers[i] if i < len(self.layers) else LayerInit()
            out.append(
                (
                    o.kernel_initializer
                    if o.kernel_initializer is not None
                    else self.kernel_initializer,
                    o.bias_initializer if o.bias_initializer is not None else self.bias_initializer,
                )
            )
        return out

    def check(self, task: str, input_dim: int, n_outputs: int) -> Loss:
        """Validate the spec against a dataset without allocating weights: the loss/task
        combination, output units and every initializer on its layer shape."""
        loss = self.resolve_loss(task, n_outputs)
        sizes = self.layer_sizes(input_dim, loss.units)
        for i, (k_ref, b_ref) in enumerate(self.layer_initializers()):
            for ref, shape, what in (
                (k_ref, (sizes[i], sizes[i + 1]), "kernel_initializer"),
                (b_ref, (sizes[i + 1],), "bias_initializer"),
            ):
                init = _initializer(ref, f"layers[{i}].{what}")
                try:
                    init.check(
                        shape,
                        dtype="float32",
                        layout="keras",
                        fan_in=None,
                        fan_out=None,
                        compat=None,
                    )
                except InitializerError as exc:
                    raise TrainingSpecError(
                        f"layers[{i}].{what}", exc.value, f"{exc.msg} (shape {list(shape)})"
                    ) from exc
        return loss

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for logs and job records)."""
        return {
            "seed": self.seed,
            "hidden_layers": list(self.hidden_layers),
            "activation": self.activation.config(),
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "layers": [
                {"kernel_initializer": o.kernel_initializer, "bias_initializer": o.bias_initializer}
                for o in self.layers
            ],
            "dropout": self.dropout,
            "output_units": self.output_units,
            "loss": self.loss,
            "optimizer": self.optimizer.to_dict(),
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "steps": self.steps,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "eval_every": self.eval_every,
            "diagnostics": self.diagnostics,
            "diagnostics_batch_size": self.diagnostics_batch_size,
        }
