"""One training run: a validated :class:`RunSpec` + a :class:`Dataset` → a :class:`RunResult`.

Pure NumPy, float32. Reproducible: every random stream (layer initializations, shuffling,
dropout, the diagnostic batch) is seeded from ``RunSpec.seed`` through
``np.random.SeedSequence(seed, spawn_key=(purpose, index))``, so the same spec and seed give
bit-identical loss curves in any process (with the same BLAS build and thread count).

The loop checks ``reporter.should_stop()`` before every batch (status ``cancelled``), reports
every batch loss through ``reporter.on_batch`` (the reporter throttles), evaluates and
records diagnostics at initialization and at the end of every ``eval_every`` epochs, and stops
with status ``diverged`` — never an exception — at the first non-finite batch loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from app.initializers import Initializer, InitializerError, generate, resolve
from app.training.activations import ACTIVATIONS, Activation
from app.training.diagnostics import layer_diagnostics
from app.training.losses import Loss
from app.training.network import Network
from app.training.optimizers import (
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    OptimizerSpec,
    make_optimizer,
)

if TYPE_CHECKING:
    from app.training.datasets import Dataset

__all__ = [
    "LOSS_NAMES",
    "RunReporter",
    "RunResult",
    "RunSpec",
    "TrainingSpecError",
    "build_network",
    "train_run",
]

# Seed purposes (first element of the SeedSequence spawn key).
_KERNEL, _BIAS, _SHUFFLE, _DROPOUT, _DIAG = range(5)
EVAL_CHUNK = 1024  # rows per forward pass when evaluating a split
MAX_AUTO_RECORDS = 100  # step-based runs evaluate at most about this often unless told

# Accepted loss spellings → canonical names ("cross_entropy" adapts to the task).
LOSS_NAMES: dict[str, str] = {
    "auto": "auto",
    "cross_entropy": "cross_entropy",
    "crossentropy": "cross_entropy",
    "softmax_cross_entropy": "softmax_cross_entropy",
    "categorical_crossentropy": "softmax_cross_entropy",
    "sparse_categorical_crossentropy": "softmax_cross_entropy",
    "binary_cross_entropy": "binary_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
    "bce": "binary_cross_entropy",
    "mse": "mse",
    "mean_squared_error": "mse",
}


class TrainingSpecError(ValueError):
    """An invalid training spec. ``field`` is the dotted path in the job spec
    (``"training.optimizer.momentum"``), ``value`` the offending value, ``msg`` the reason."""

    def __init__(self, field: str, value: Any, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.value = value
        self.msg = msg


class RunReporter(Protocol):
    """What a run tells the outside world (the job layer implements it)."""

    def should_stop(self) -> bool: ...

    def on_batch(self, epoch: int, batch: int, loss: float) -> None: ...

    def on_epoch(self, record: dict[str, Any]) -> None: ...

    def on_diagnostics(self, when: str, layers: list[dict[str, Any]]) -> None: ...


class NullReporter:
    """A :class:`RunReporter` that never cancels and keeps nothing (benchmarks, scripts);
    subclass it to keep only what you need."""

    def should_stop(self) -> bool:
        return False

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        pass

    def on_epoch(self, record: dict[str, Any]) -> None:
        pass

    def on_diagnostics(self, when: str, layers: list[dict[str, Any]]) -> None:
        pass


# --------------------------------------------------------------------------- spec parsing


def _seed(seed: int, purpose: int, index: int = 0) -> int:
    """A uint32 seed for one random stream, derived from the run seed."""
    ss = np.random.SeedSequence(seed, spawn_key=(purpose, index))
    return int(ss.generate_state(1, np.uint32)[0])


def _check_keys(obj: Mapping[str, Any], allowed: Sequence[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise TrainingSpecError(
                f"{prefix}.{key}", obj[key], f"unknown field; allowed: {', '.join(allowed)}"
            )


def _number(
    value: Any, fld: str, *, lo: float | None = None, hi: float | None = None,
    lo_open: bool = False, hi_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TrainingSpecError(fld, value, "must be a finite number")
    v = float(value)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise TrainingSpecError(fld, value, f"must be {'>' if lo_open else '>='} {lo:g}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise TrainingSpecError(fld, value, f"must be {'<' if hi_open else '<='} {hi:g}")
    return v


def _integer(value: Any, fld: str, *, lo: int = 1, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainingSpecError(fld, value, "must be an integer")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise TrainingSpecError(fld, value, f"must be {rng}")
    return int(value)


def _boolean(value: Any, fld: str) -> bool:
    if not isinstance(value, bool):
        raise TrainingSpecError(fld, value, "must be true or false")
    return value


def _activation(ref: Any, fld: str) -> Activation:
    if isinstance(ref, str):
        name, params = ref, {}
    elif isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
        name = ref["name"]
        params = {k: v for k, v in ref.items() if k != "name"}
    else:
        raise TrainingSpecError(fld, ref, "must be an activation name or {name, ...params}")
    canon = name.strip().lower().replace("-", "_")
    canon = {"identity": "linear", "leakyrelu": "leaky_relu"}.get(canon, canon)
    if canon not in ACTIVATIONS:
        raise TrainingSpecError(fld, ref, f"unknown activation; one of {', '.join(ACTIVATIONS)}")
    allowed = {"leaky_relu": ("negative_slope",), "elu": ("alpha",)}.get(canon, ())
    if isinstance(ref, Mapping):
        _check_keys(params, allowed, fld)
    kwargs: dict[str, float] = {}
    if "negative_slope" in params:
        kwargs["negative_slope"] = _number(params["negative_slope"], f"{fld}.negative_slope", lo=0)
    if "alpha" in params:
        kwargs["alpha"] = _number(params["alpha"], f"{fld}.alpha", lo=0, lo_open=True)
    return Activation(canon, **kwargs)


def _initializer(ref: Any, fld: str) -> Initializer:
    try:
        return resolve(ref)
    except InitializerError as exc:
        sub = exc.field
        path = fld if sub in ("", None, "name") else f"{fld}.{sub}"
        raise TrainingSpecError(path, exc.value, exc.msg) from exc


def _optimizer(ref: Any, fld: str) -> OptimizerSpec:
    if isinstance(ref, str):
        ref = {"name": ref}
    if not isinstance(ref, Mapping):
        raise TrainingSpecError(fld, ref, "must be an optimizer name or {name, ...params}")
    name = ref.get("name", "adam")
    if not isinstance(name, str) or name.strip().lower() not in OPTIMIZERS:
        raise TrainingSpecError(f"{fld}.name", name, f"must be one of {', '.join(OPTIMIZERS)}")
    name = name.strip().lower()
    common = ("name", "learning_rate", "lr", "weight_decay")
    extra = {
        "sgd": ("momentum", "nesterov"),
        "adam": ("beta1", "beta2", "betas", "eps", "epsilon"),
        "adamw": ("beta1", "beta2", "betas", "eps", "epsilon"),
        "rmsprop": ("alpha", "rho", "eps", "epsilon", "momentum", "centered"),
    }[name]
    _check_keys(ref, common + extra, fld)
    kw: dict[str, Any] = {"name": name}
    lr = ref.get("learning_rate", ref.get("lr", DEFAULT_LR[name]))
    kw["learning_rate"] = _number(lr, f"{fld}.learning_rate", lo=0, lo_open=True)
    kw["weight_decay"] = _number(
        ref.get("weight_decay", DEFAULT_WEIGHT_DECAY[name]), f"{fld}.weight_decay", lo=0
    )
    if "momentum" in ref:
        kw["momentum"] = _number(ref["momentum"], f"{fld}.momentum", lo=0, hi=1, hi_open=True)
    if "nesterov" in ref:
        kw["nesterov"] = _boolean(ref["nesterov"], f"{fld}.nesterov")
        if kw["nesterov"] and kw.get("momentum", 0.0) <= 0:
            raise TrainingSpecError(f"{fld}.nesterov", True, "Nesterov momentum needs momentum > 0")
    if "betas" in ref:
        betas = ref["betas"]
        if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
            raise TrainingSpecError(f"{fld}.betas", betas, "must be [beta1, beta2]")
        kw["beta1"], kw["beta2"] = betas
    for key in ("beta1", "beta2"):
        if key in ref:
            kw[key] = ref[key]
        if key in kw:
            kw[key] = _number(kw[key], f"{fld}.{key}", lo=0, hi=1, hi_open=True)
    eps = ref.get("eps", ref.get("epsilon"))
    if eps is not None:
        kw["eps"] = _number(eps, f"{fld}.eps", lo=0)
    alpha = ref.get("alpha", ref.get("rho"))
    if alpha is not None:
        kw["alpha"] = _number(alpha, f"{fld}.alpha", lo=0, hi=1)
    if "centered" in ref:
        kw["centered"] = _boolean(ref["centered"], f"{fld}.centered")
    return OptimizerSpec(**kw)


@dataclass(frozen=True)
class LayerInit:
    """Per-layer initializer overrides (``None`` = use the run's default)."""

    kernel_initializer: Any = None
    bias_initializer: Any = None


def _layer_overrides(value: Any, fld: str) -> tuple[LayerInit, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TrainingSpecError(
            fld, value, "must be a list of {kernel_initializer, bias_initializer}"
        )
    out = []
    for i, item in enumerate(value):
        if item is None:
            out.append(LayerInit())
            continue
        if not isinstance(item, Mapping):
            raise TrainingSpecError(f"{fld}[{i}]", item, "must be an object or null")
        _check_keys(item, ("kernel_initializer", "bias_initializer"), f"{fld}[{i}]")
        k, b = item.get("kernel_initializer"), item.get("bias_initializer")
        if k is not None:
            _initializer(k, f"{fld}[{i}].kernel_initializer")
        if b is not None:
            _initializer(b, f"{fld}[{i}].bias_initializer")
        out.append(LayerInit(k, b))
    return tuple(out)


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs besides the data. Build it with :meth:`from_dict`.

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

    @classmethod
    def from_dict(
        cls,
        *,
        model: Mapping[str, Any],
        training: Mapping[str, Any],
        kernel_initializer: Any,
        seed: int,
        record: Mapping[str, Any] | None = None,
        bias_initializer: Any = None,
        layers: Sequence[Any] | None = None,
    ) -> RunSpec:
        """Build from the job spec's ``model``, ``training`` and ``record`` objects plus one
        scheme (its ``initializer``, optional ``bias_initializer`` and ``layers``) and the run
        seed. Raises :class:`TrainingSpecError` naming the offending field.

        ``model``: ``hidden_layers`` (list of ints, may be empty), ``activation`` (name or
        ``{name, negative_slope|alpha}``), ``bias_initializer``, ``dropout`` in [0, 1),
        ``output_units``, ``layers`` (per-layer overrides; the scheme's win).
        ``training``: ``optimizer`` (name or ``{name, learning_rate, weight_decay, momentum,
        nesterov, beta1, beta2, eps, alpha, centered}``), ``loss``, ``batch_size`` (int or null
        = full batch), exactly one of ``epochs`` / ``steps``, ``shuffle``, ``drop_last``.
        ``record``: ``diagnostics``, ``diagnostics_batch_size``, ``eval_every``; other keys
        (``plot_n_batches``, ...) belong to the job layer and are ignored here.
        """
        if not isinstance(model, Mapping):
            raise TrainingSpecError("model", model, "must be an object")
        if not isinstance(training, Mapping):
            raise TrainingSpecError("training", training, "must be an object")
        _check_keys(
            model,
            ("hidden_layers", "activation", "bias_initializer", "kernel_initializer", "dropout",
             "output_units", "layers"),
            "model",
        )
        _check_keys(
            training,
            ("optimizer", "loss", "batch_size", "epochs", "steps", "shuffle", "drop_last"),
            "training",
        )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise TrainingSpecError("seed", seed, "must be an integer in [0, 2**64)")

        hidden = model.get("hidden_layers", [256, 128])
        if not isinstance(hidden, Sequence) or isinstance(hidden, str):
            raise TrainingSpecError("model.hidden_layers", hidden, "must be a list of integers")
        hidden_t = tuple(_integer(h, f"model.hidden_layers[{i}]") for i, h in enumerate(hidden))
        activation = _activation(model.get("activation", "relu"), "model.activation")
        dropout = _number(model.get("dropout", 0.0), "model.dropout", lo=0, hi=1, hi_open=True)
        out_units = model.get("output_units")
        if out_units is not None:
            out_units = _integer(out_units, "model.output_units")

        if kernel_initializer is None:
            kernel_initializer = model.get("kernel_initializer")
            kfield = "model.kernel_initializer"
        else:
            kfield = "initializer"
        if kernel_initializer is None:
            raise TrainingSpecError(kfield, None, "a kernel initializer is required")
        _initializer(kernel_initializer, kfield)
        bfield = "bias_initializer"
        if bias_initializer is None:
            bias_initializer = model.get("bias_initializer", "zeros")
            bfield = "model.bias_initializer"
        _initializer(bias_initializer, bfield)

        n_layers = len(hidden_t) + 1
        model_layers = _layer_overrides(model.get("layers"), "model.layers")
        scheme_layers = _layer_overrides(layers, "layers")
        for name, lst in (("model.layers", model_layers), ("layers", scheme_layers)):
            if len(lst) > n_layers:
                raise TrainingSpecError(
                    name, len(lst), f"has more entries than the {n_layers} dense layers"
                )
        merged = []
        for i in range(n_layers):
            m = model_layers[i] if i < len(model_layers) else LayerInit()
            s = scheme_layers[i] if i < len(scheme_layers) else LayerInit()
            merged.append(
                LayerInit(
                    s.kernel_initializer if s.kernel_initializer is not None
                    else m.kernel_initializer,
                    s.bias_initializer if s.bias_initializer is not None else m.bias_initializer,
                )
            )
        while merged and merged[-1] == LayerInit():
            merged.pop()

        optimizer = _optimizer(training.get("optimizer", "adam"), "training.optimizer")
        loss = training.get("loss", "auto")
        if loss is None:
            loss = "auto"
        if not isinstance(loss, str) or loss.strip().lower() not in LOSS_NAMES:
            raise TrainingSpecError(
                "training.loss", loss, f"must be one of {', '.join(LOSS_NAMES)}"
            )
        batch_size = training.get("batch_size", 128)
        if batch_size is not None:
            batch_size = _integer(batch_size, "training.batch_size")
        epochs, steps = training.get("epochs"), training.get("steps")
        if epochs is not None and steps is not None:
            raise TrainingSpecError(
                "training.steps", steps, "give either epochs or steps, not both"
            )
        if epochs is None and steps is None:
            epochs = 1
        if epochs is not None:
            epochs = _integer(epochs, "training.epochs")
        if steps is not None:
            steps = _integer(steps, "training.steps")

        rec = record or {}
        if not isinstance(rec, Mapping):
            raise TrainingSpecError("record", rec, "must be an object")
        eval_every = rec.get("eval_every")
        if eval_every is not None:
            eval_every = _integer(eval_every, "record.eval_every")
        diag_bs = _integer(
            rec.get("diagnostics_batch_size", 1024), "record.diagnostics_batch_size", hi=1024
        )
        return cls(
            kernel_initializer=kernel_initializer,
            seed=int(seed),
            hidden_layers=hidden_t,
            activation=activation,
            bias_initializer=bias_initializer,
            layers=tuple(merged),
            dropout=dropout,
            output_units=out_units,
            loss=LOSS_NAMES[loss.strip().lower()],
            optimizer=optimizer,
            batch_size=batch_size,
            epochs=epochs,
            steps=steps,
            shuffle=_boolean(training.get("shuffle", True), "training.shuffle"),
            drop_last=_boolean(training.get("drop_last", False), "training.drop_last"),
            eval_every=eval_every,
            diagnostics=_boolean(rec.get("diagnostics", True), "record.diagnostics"),
            diagnostics_batch_size=diag_bs,
        )

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
                    "training.loss", self.loss, f"binary cross-entropy needs a binary dataset, "
                    f"not {task}"
                )
            units = 1
        else:
            units = n_outputs
        if self.output_units is not None and self.output_units != units:
            raise TrainingSpecError(
                "model.output_units", self.output_units,
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
                    o.kernel_initializer if o.kernel_initializer is not None
                    else self.kernel_initializer,
                    o.bias_initializer if o.bias_initializer is not None
                    else self.bias_initializer,
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
                        shape, dtype="float32", layout="keras", fan_in=None, fan_out=None,
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


# --------------------------------------------------------------------------- result


@dataclass
class RunResult:
    """The outcome of one run.

    ``batch_losses``: float32, one entry per optimizer step taken (a diverged run's last entry
    is the non-finite loss). ``epochs``: the records passed to ``on_epoch``.
    ``diagnostics``: ``{"init" | "epoch_N": {"epoch", "step", "loss", "layers": [...]}}``.
    ``final_*``: full-split evaluation (no dropout) after the last step; None when the run
    diverged or was cancelled, and for a missing validation split / regression accuracy.
    """

    status: str  # "succeeded" | "diverged" | "cancelled"
    steps: int
    total_steps: int
    epochs_done: int
    batch_losses: np.ndarray
    epochs: list[dict[str, Any]]
    diagnostics: dict[str, dict[str, Any]]
    seconds: float
    parameter_count: int
    final_train_loss: float | None = None
    final_train_accuracy: float | None = None
    final_val_loss: float | None = None
    final_val_accuracy: float | None = None
    diverged_at_step: int | None = None

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite losses become None)."""
        return {
            "status": self.status,
            "steps": self.steps,
            "total_steps": self.total_steps,
            "epochs_done": self.epochs_done,
            "batch_losses": [v if math.isfinite(v) else None for v in self.batch_losses.tolist()],
            "epochs": self.epochs,
            "diagnostics": self.diagnostics,
            "seconds": self.seconds,
            "parameter_count": self.parameter_count,
            "final_train_loss": self.final_train_loss,
            "final_train_accuracy": self.final_train_accuracy,
            "final_val_loss": self.final_val_loss,
            "final_val_accuracy": self.final_val_accuracy,
            "diverged_at_step": self.diverged_at_step,
        }


# --------------------------------------------------------------------------- training


def _init_tensor(ref: Any, shape: tuple[int, ...], seed: int, dtype: np.dtype) -> np.ndarray:
    init = resolve(ref)
    s = init.seed if init.seed is not None else seed
    arr = generate(init, shape, seed=s, dtype="float32")
    return np.asarray(arr, dtype=dtype)


def build_network(
    spec: RunSpec, input_dim: int, loss: Loss, *, dtype: type[np.floating] = np.float32
) -> Network:
    """The network for ``spec`` with its seeded initial weights."""
    net = Network(
        spec.layer_sizes(input_dim, loss.units), spec.activation, loss,
        dropout=spec.dropout, dtype=dtype,
    )
    for i, (k_ref, b_ref) in enumerate(spec.layer_initializers()):
        fan_in, fan_out = net.shapes[i]
        kernel = _init_tensor(k_ref, (fan_in, fan_out), _seed(spec.seed, _KERNEL, i), net.dtype)
        bias = _init_tensor(b_ref, (fan_out,), _seed(spec.seed, _BIAS, i), net.dtype)
        net.set_layer(i, kernel, bias)
    return net


def _evaluate(
    net: Network, x: np.ndarray, target: np.ndarray, labels: np.ndarray | None
) -> tuple[float | None, float | None]:
    """Mean loss and accuracy over a whole split (no dropout), in chunks."""
    n = x.shape[0]
    if n == 0:
        return None, None
    total = 0.0
    correct = 0
    for lo in range(0, n, EVAL_CHUNK):
        hi = min(lo + EVAL_CHUNK, n)
        buf = net.buffers(hi - lo)
        z = net.forward(x[lo:hi], buf, train=False)
        total += net.loss(z, target[lo:hi], buf.dz[-1], backward=False) * (hi - lo)
        if labels is not None:
            correct += net.loss.correct(z, labels[lo:hi])
    loss = total / n
    return (loss if math.isfinite(loss) else None), (
        correct / n if labels is not None else None
    )


def train_run(
    spec: RunSpec,
    data: Dataset,
    reporter: RunReporter,
    *,
    dtype: type[np.floating] = np.float32,
) -> RunResult:
    """Train one network; never raises on divergence (status ``diverged``).

    Raises :class:`TrainingSpecError` when the spec does not fit the dataset (call
    ``spec.check`` at submission to catch that early)."""
    with np.errstate(all="ignore"):
        return _train(spec, data, reporter, np.dtype(dtype))


def _train(spec: RunSpec, data: Dataset, reporter: RunReporter, dtype: np.dtype) -> RunResult:
    t_start = time.perf_counter()
    if data.x_train.shape[0] == 0:
        raise TrainingSpecError("dataset", data.name, "the training split is empty")
    loss_fn = spec.check(data.task, data.input_dim, data.n_outputs)
    net = build_network(spec, data.input_dim, loss_fn, dtype=dtype.type)
    opt = make_optimizer(spec.optimizer, net.params, net.grads)

    x_train = np.ascontiguousarray(data.x_train, dtype=dtype)
    x_val = np.ascontiguousarray(data.x_val, dtype=dtype)
    t_train = loss_fn.targets(data.y_train, dtype)
    t_val = loss_fn.targets(data.y_val, dtype)
    l_train = loss_fn.labels(data.y_train)
    l_val = loss_fn.labels(data.y_val)
    # Softmax cross-entropy consumes the labels themselves: gather once, use twice.
    same_labels = loss_fn.label_targets

    n = x_train.shape[0]
    bs = spec.effective_batch_size(n)
    per_epoch = spec.batches_per_epoch(n)
    total = spec.total_steps(n)
    n_epochs = spec.total_epochs(n)
    every = spec.record_every(n)

    losses = np.zeros(total, dtype=np.float32)
    xb = np.empty((bs, x_train.shape[1]), dtype=dtype)
    tb = np.empty((bs, *t_train.shape[1:]), dtype=t_train.dtype)
    lb = np.empty(bs, dtype=np.int64) if (l_train is not None and not same_labels) else None
    shuffle_rng = np.random.default_rng(_seed(spec.seed, _SHUFFLE))
    dropout_rng = np.random.default_rng(_seed(spec.seed, _DROPOUT))
    # Sequential batches without shuffling are slices of the arrays themselves: no copy.
    direct = not spec.shuffle

    diagnostics: dict[str, dict[str, Any]] = {}
    diag_x = diag_t = None
    if spec.diagnostics:
        m = min(n, spec.diagnostics_batch_size)
        diag_rng = np.random.default_rng(_seed(spec.seed, _DIAG))
        idx = np.sort(diag_rng.choice(n, size=m, replace=False))
        diag_x, diag_t = x_train[idx], t_train[idx]

    def record_diagnostics(when: str, epoch: int, step: int) -> None:
        if diag_x is None or diag_t is None:
            return
        d = layer_diagnostics(net, diag_x, diag_t)
        diagnostics[when] = {"epoch": epoch, "step": step, **d}
        reporter.on_diagnostics(when, d["layers"])

    record_diagnostics("init", 0, 0)

    epochs: list[dict[str, Any]] = []
    status = "succeeded"
    step = 0
    epochs_done = 0
    diverged_at: int | None = None
    run_loss = 0.0
    run_correct = 0
    run_seen = 0
    t_record = time.perf_counter()
    for epoch in range(1, n_epochs + 1):
        order = None if direct else shuffle_rng.permutation(n)
        for b in range(per_epoch):
            if step >= total:
                break
            if reporter.should_stop():
                status = "cancelled"
                break
            lo = b * bs
            hi = min(lo + bs, n)
            m = hi - lo
            if order is None:
                xbatch, tbatch = x_train[lo:hi], t_train[lo:hi]
                lbatch = l_train[lo:hi] if l_train is not None else None
            else:
                idx = order[lo:hi]
                xbatch, tbatch = xb[:m], tb[:m]
                np.take(x_train, idx, axis=0, out=xbatch)
                np.take(t_train, idx, axis=0, out=tbatch)
                if same_labels:
                    lbatch = tbatch
                elif lb is not None and l_train is not None:
                    lbatch = lb[:m]
                    np.take(l_train, idx, axis=0, out=lbatch)
                else:
                    lbatch = None
            value = net.loss_and_grad(xbatch, tbatch, train=True, rng=dropout_rng)
            losses[step] = value
            step += 1
            reporter.on_batch(epoch, step, value)
            if not math.isfinite(value):
                status = "diverged"
                diverged_at = step
                break
            run_loss += value * m
            run_seen += m
            if lbatch is not None:
                run_correct += loss_fn.correct(net.buffers(m).z[-1], lbatch)
            opt.step()
        if status != "succeeded":
            break
        epochs_done = epoch
        if epoch % every == 0 or epoch == n_epochs:
            val_loss, val_acc = _evaluate(net, x_val, t_val, l_val)
            record = {
                "epoch": epoch,
                "step": step,
                "train_loss": run_loss / run_seen if run_seen else None,
                "train_accuracy": (
                    run_correct / run_seen if run_seen and l_train is not None else None
                ),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": time.perf_counter() - t_record,
            }
            epochs.append(record)
            reporter.on_epoch(record)
            record_diagnostics(f"epoch_{epoch}", epoch, step)
            run_loss, run_correct, run_seen = 0.0, 0, 0
            t_record = time.perf_counter()

    result = RunResult(
        status=status,
        steps=step,
        total_steps=total,
        epochs_done=epochs_done,
        batch_losses=losses[:step],
        epochs=epochs,
        diagnostics=diagnostics,
        seconds=0.0,
        parameter_count=net.n_params,
        diverged_at_step=diverged_at,
    )
    if status == "succeeded":
        result.final_train_loss, result.final_train_accuracy = _evaluate(
            net, x_train, t_train, l_train
        )
        result.final_val_loss, result.final_val_accuracy = _evaluate(net, x_val, t_val, l_val)
    result.seconds = time.perf_counter() - t_start
    return result
