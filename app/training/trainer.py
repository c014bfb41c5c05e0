"""One training run: a validated :class:`RunSpec` + a :class:`Dataset` → a :class:`RunResult`.

Pure NumPy, float32. Reproducible: every random stream (layer initializations, shuffling,
dropout, the diagnostic batch) is seeded from ``RunSpec.seed`` through
``np.random.SeedSequence(seed, spawn_key=(purpose, index))``, so the same spec and seed give
bit-identical loss curves in any process (with the same BLAS build), whatever the number of
threads: BLAS runs single-threaded and the trainer's own threads (``app.training.parallel``)
each compute a fixed row block of a batch (``Network.row_blocks``).

The loop checks ``reporter.should_stop()`` before every batch (status ``cancelled``), reports
every batch loss through ``reporter.on_batch`` (the reporter throttles), evaluates and
records diagnostics at initialization and at the end of every ``eval_every`` epochs, and stops
with status ``diverged`` — never an exception — at the first non-finite batch loss.

Given a ``checkpointer`` (:class:`app.training.checkpoint.Checkpointer`), the loop asks it
after every batch and at every epoch boundary whether a checkpoint is due and hands it one;
``resume=`` a :class:`Checkpoint` carries on from there, bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from app.initializers import generate, resolve
from app.training import diagnostics, optimizers
from app.training.checkpoint import Checkpoint, Checkpointer
from app.training.diagnostics import layer_diagnostics
from app.training.losses import LOSS_NAMES, Loss
from app.training.network import Network
from app.training.optimizers import make_optimizer
from app.training.parallel import single_threaded_blas
from app.training.results import NullReporter, RunReporter, RunResult
from app.training.spec import MAX_AUTO_RECORDS, LayerInit, RunSpec, TrainingSpecError

if TYPE_CHECKING:
    from app.training.datasets import Dataset

__all__ = [
    "EVAL_CHUNK",
    "LOSS_NAMES",
    "MAX_AUTO_RECORDS",
    "Checkpoint",
    "Checkpointer",
    "LayerInit",
    "NullReporter",
    "RunReporter",
    "RunResult",
    "RunSpec",
    "TrainingSpecError",
    "build_network",
    "train_run",
    "warm_up",
]

# Seed purposes (first element of the SeedSequence spawn key).
_KERNEL, _BIAS, _SHUFFLE, _DROPOUT, _DIAG = range(5)
EVAL_CHUNK = 1024  # rows per forward pass when evaluating a split


def warm_up() -> None:
    """Load (the first time on a machine, compile: ~1-2 s) the trainer's compiled kernels —
    the Adam update, the diagnostics' unit clustering — so the first run does not pay for
    them (Numba's cache: see ``app.initializers.warm_up``)."""
    optimizers.warm_up()
    diagnostics.warm_up()


def _seed(seed: int, purpose: int, index: int = 0) -> int:
    """A uint32 seed for one random stream, derived from the run seed."""
    ss = np.random.SeedSequence(seed, spawn_key=(purpose, index))
    return int(ss.generate_state(1, np.uint32)[0])


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
        spec.layer_sizes(input_dim, loss.units),
        spec.activation,
        loss,
        dropout=spec.dropout,
        dtype=dtype,
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
    return (loss if math.isfinite(loss) else None), (correct / n if labels is not None else None)


def train_run(
    spec: RunSpec,
    data: Dataset,
    reporter: RunReporter,
    *,
    dtype: type[np.floating] = np.float32,
    checkpointer: Checkpointer | None = None,
    resume: Checkpoint | None = None,
) -> RunResult:
    """Train one network; never raises on divergence (status ``diverged``).

    ``checkpointer`` is offered checkpoints (valid only during its ``save_checkpoint`` call:
    its arrays are the live ones); ``resume`` continues a run from one (the reporter is not
    told again what the checkpoint already holds: the init diagnostics, earlier epochs).

    Raises :class:`TrainingSpecError` when the spec does not fit the dataset (call
    ``spec.check`` at submission to catch that early), :class:`CheckpointError` when
    ``resume`` does not fit the run."""
    with np.errstate(all="ignore"), single_threaded_blas():
        return _train(spec, data, reporter, np.dtype(dtype), checkpointer, resume)


def _train(
    spec: RunSpec,
    data: Dataset,
    reporter: RunReporter,
    dtype: np.dtype,
    checkpointer: Checkpointer | None,
    resume: Checkpoint | None,
) -> RunResult:
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

    epochs: list[dict[str, Any]] = []
    status = "succeeded"
    step = 0
    epochs_done = 0
    diverged_at: int | None = None
    run_loss = 0.0
    run_correct = 0
    run_seen = 0
    start_epoch, start_batch = 1, 0
    if resume is None:
        record_diagnostics("init", 0, 0)
    else:
        resume.check(net.params, opt.state, total, per_epoch)
        net.params[...] = resume.params  # in place: the layers and the optimizer hold views
        opt.t = resume.optimizer_t
        for name, vector in opt.state.items():
            vector[...] = resume.optimizer_state[name]
        losses[: resume.step] = resume.losses
        shuffle_rng.bit_generator.state = resume.shuffle_state
        dropout_rng.bit_generator.state = resume.dropout_state
        step, epochs_done = resume.step, resume.epochs_done
        run_loss, run_correct, run_seen = resume.run_loss, resume.run_correct, resume.run_seen
        epochs = [dict(record) for record in resume.epochs]
        diagnostics.update(resume.diagnostics)
        start_epoch, start_batch = resume.epoch, resume.batch

    def snapshot(epoch: int, batch: int, shuffle_state: Mapping[str, Any]) -> Checkpoint:
        return Checkpoint(
            epoch=epoch,
            batch=batch,
            step=step,
            epochs_done=epochs_done,
            params=net.params,
            optimizer_t=opt.t,
            optimizer_state=opt.state,
            losses=losses[:step],
            shuffle_state=shuffle_state,
            dropout_state=dropout_rng.bit_generator.state,
            run_loss=run_loss,
            run_correct=run_correct,
            run_seen=run_seen,
            epochs=epochs,
            diagnostics=diagnostics,
        )

    t_record = time.perf_counter()
    for epoch in range(start_epoch, n_epochs + 1):
        # The data order's state before this epoch's permutation: a checkpoint within the
        # epoch draws the same permutation again on resume.
        epoch_shuffle = shuffle_rng.bit_generator.state if checkpointer is not None else {}
        order = None if direct else shuffle_rng.permutation(n)
        for b in range(start_batch if epoch == start_epoch else 0, per_epoch):
            if step >= total:
                break
            if reporter.should_stop():
                status = "cancelled"
                break
            lo = b * bs
            hi = min(lo + bs, n)
            m = hi - lo
            gather: tuple[np.ndarray, np.ndarray] | None = None
            if order is None:
                xbatch, tbatch = x_train[lo:hi], t_train[lo:hi]
                lbatch = l_train[lo:hi] if l_train is not None else None
            else:
                idx = order[lo:hi]
                # the row blocks gather their inputs themselves, on their threads
                xbatch, tbatch, gather = xb[:m], tb[:m], (x_train, idx)
                np.take(t_train, idx, axis=0, out=tbatch)
                if same_labels:
                    lbatch = tbatch
                elif lb is not None and l_train is not None:
                    lbatch = lb[:m]
                    np.take(l_train, idx, axis=0, out=lbatch)
                else:
                    lbatch = None
            value = net.loss_and_grad(xbatch, tbatch, train=True, rng=dropout_rng, gather=gather)
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
            if (
                checkpointer is not None
                and b + 1 < per_epoch
                and step < total
                and checkpointer.checkpoint_due(False)
            ):
                checkpointer.save_checkpoint(snapshot(epoch, b + 1, epoch_shuffle))
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
        if (
            checkpointer is not None
            and epoch < n_epochs
            and step < total
            and checkpointer.checkpoint_due(True)
        ):
            checkpointer.save_checkpoint(snapshot(epoch + 1, 0, shuffle_rng.bit_generator.state))

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
        params=net.params,
    )
    if status == "succeeded":
        result.final_train_loss, result.final_train_accuracy = _evaluate(
            net, x_train, t_train, l_train
        )
        result.final_val_loss, result.final_val_accuracy = _evaluate(net, x_val, t_val, l_val)
    result.seconds = time.perf_counter() - t_start
    return result
