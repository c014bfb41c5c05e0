"""Losses on the network's raw outputs (logits), mean-reduced like torch's defaults.

Each loss computes its value and, when asked, the gradient with respect to the logits in one
pass, writing the gradient into a caller-owned ``(batch, outputs)`` buffer:

- ``softmax_cross_entropy``: ``mean_i(logsumexp(z_i) - z_i[y_i])`` with integer labels;
  gradient ``(softmax(z) - onehot(y)) / B`` (torch ``nn.CrossEntropyLoss``).
- ``binary_cross_entropy``: sigmoid + BCE on logits, ``mean(max(z,0) - z t + log1p(e^-|z|))``;
  gradient ``(sigmoid(z) - t) / (B k)`` (torch ``nn.BCEWithLogitsLoss``).
- ``mse``: ``mean((z - t)^2)`` over all elements; gradient ``2 (z - t) / (B k)``
  (torch ``nn.MSELoss``). On classification data the target is the one-hot label
  (multiclass) or the 0/1 label (binary).

Accuracy: argmax for several outputs; for one output, ``z > 0`` (logit of BCE) or
``z > 0.5`` (MSE against 0/1). Regression has no accuracy (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.training.activations import sigmoid

__all__ = ["LOSSES", "LOSS_NAMES", "Loss"]

LOSSES: tuple[str, ...] = ("softmax_cross_entropy", "binary_cross_entropy", "mse")

# Accepted loss spellings → canonical names ("auto" and "cross_entropy" adapt to the task).
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


@dataclass(frozen=True)
class Loss:
    """A loss bound to a task: ``name`` in LOSSES, ``task`` of the dataset, output ``units``."""

    name: str
    task: str
    units: int

    @property
    def output_activation(self) -> str:
        """The link the loss applies to the logits (``softmax``, ``sigmoid``, or ``linear``
        for MSE): the network's output layer itself is linear."""
        return {"softmax_cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(
            self.name, "linear"
        )

    @property
    def label_targets(self) -> bool:
        """True when the per-example target is an integer label (softmax cross-entropy)."""
        return self.name == "softmax_cross_entropy"

    def targets(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """The target array the loss consumes, built once per dataset split.

        Integer labels ``(n,)`` for softmax cross-entropy; float ``(n, units)`` otherwise.
        """
        if self.label_targets:
            return np.ascontiguousarray(np.asarray(y).reshape(-1), dtype=np.int64)
        if self.task == "regression":
            t = np.asarray(y, dtype=dtype)
            return np.ascontiguousarray(t.reshape(len(t), self.units))
        labels = np.asarray(y).astype(np.int64, copy=False).reshape(-1)
        if self.units == 1:
            return np.ascontiguousarray(labels.astype(dtype).reshape(-1, 1))
        onehot = np.zeros((len(labels), self.units), dtype=dtype)
        onehot[np.arange(len(labels)), labels] = 1
        return onehot

    def labels(self, y: np.ndarray) -> np.ndarray | None:
        """Integer labels for accuracy, or None for regression."""
        if self.task == "regression":
            return None
        return np.ascontiguousarray(np.asarray(y).reshape(-1), dtype=np.int64)

    def __call__(
        self,
        z: np.ndarray,
        target: np.ndarray,
        grad: np.ndarray,
        *,
        backward: bool = True,
        rows: int | None = None,
    ) -> float:
        """Mean loss of logits ``z`` (batch, units); gradient into ``grad`` if ``backward``.

        ``rows``: the batch size the mean runs over when ``z`` is a block of a larger batch
        (default its own rows): the value and gradient are then that block's share, and the
        blocks' values add up to the batch's. ``grad`` is also the scratch buffer, so it is
        overwritten either way.
        """
        n = z.shape[0] if rows is None else rows
        size = n * z.shape[1]  # elements the mean of BCE and MSE runs over
        if self.name == "softmax_cross_entropy":
            # p = softmax(z) computed stably in grad; loss = log(sum exp(z - m)) + m - z[y]
            m = z.max(axis=1, keepdims=True)  # (batch, 1)
            np.subtract(z, m, out=grad)
            np.exp(grad, out=grad)
            s = grad.sum(axis=1, keepdims=True)  # (batch, 1)
            idx = np.arange(z.shape[0])
            picked = z[idx, target]
            value = float(np.sum(np.log(s[:, 0]) + m[:, 0] - picked, dtype=np.float64)) / n
            if backward:
                np.divide(grad, s, out=grad)
                grad[idx, target] -= 1
                grad *= 1.0 / n
            return value
        if self.name == "binary_cross_entropy":
            # loss = max(z, 0) - z t + log1p(exp(-|z|))
            np.abs(z, out=grad)
            np.negative(grad, out=grad)
            np.exp(grad, out=grad)
            np.log1p(grad, out=grad)
            grad += np.maximum(z, 0)
            grad -= z * target
            value = float(np.sum(grad, dtype=np.float64)) / size
            if backward:
                sigmoid(z, grad)
                grad -= target
                grad *= 1.0 / size
            return value
        # mse
        np.subtract(z, target, out=grad)
        value = float(np.sum(np.square(grad), dtype=np.float64)) / size
        if backward:
            grad *= 2.0 / size
        return value

    def correct(self, z: np.ndarray, labels: np.ndarray | None) -> int:
        """Number of correctly classified rows of ``z`` (0 for regression)."""
        if labels is None:
            return 0
        if self.units > 1:
            return int(np.count_nonzero(z.argmax(axis=1) == labels))
        threshold = 0.0 if self.name == "binary_cross_entropy" else 0.5
        return int(np.count_nonzero((z[:, 0] > threshold) == (labels > 0)))
