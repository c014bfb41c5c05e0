"""A dense feed-forward network with flat parameter storage and preallocated batch buffers.

Kernel layout is Keras's ``(in, out)``: a layer computes ``z = x @ W + b`` with
``(batch, in) @ (in, out) -> (batch, out)``. All kernels and biases are views into ONE flat
parameter vector (and their gradients into one flat gradient vector), so an optimizer updates
every parameter with a handful of whole-vector NumPy calls.

Per batch size the network keeps one set of buffers (pre-activations, activations, dropout
masks, backward scratch); forward and backward write into them with ``out=`` and allocate
nothing proportional to the layer sizes (a few tiny temporaries for the loss aside).

A batch is computed as fixed row blocks (:meth:`Network.row_blocks`), each on its own thread
with single-threaded BLAS (``app.training.parallel``): forward, its share of the loss and
backward into its own gradient vector; the blocks' gradients are then summed in block order.
The blocks depend on the batch size only, so the bytes never depend on the thread count.

Dropout is inverted dropout on every hidden layer's output: ``h * mask / keep`` with
``mask ~ Bernoulli(keep)`` drawn from the generator passed in; off in evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from app.training.activations import Activation
from app.training.losses import Loss
from app.training.parallel import default_threads, run_all

__all__ = ["BLOCKS", "MIN_BLOCK_ROWS", "Buffers", "Network", "buffer_bytes"]

# A batch is computed as BLOCKS row blocks, one thread each (app.training.parallel), when each
# block gets at least MIN_BLOCK_ROWS rows; the blocks' gradients are summed.
BLOCKS = 2
MIN_BLOCK_ROWS = 32


def buffer_bytes(
    sizes: Sequence[int], batch: int, *, dropout: float = 0.0, itemsize: int = 4
) -> int:
    """Bytes :meth:`Network.buffers` allocates for ``batch`` rows of a network of layer
    ``sizes`` (for submission limits: computed without allocating anything)."""
    outs = [int(s) for s in sizes[1:]]
    hidden = sum(outs[:-1])
    # z and dz per layer; h per hidden layer (plus hd, mask and u with dropout); relu_mask (bool)
    floats = 2 * sum(outs) + (4 if dropout > 0 else 1) * hidden
    return int(batch) * (floats * int(itemsize) + hidden)


@dataclass
class Buffers:
    """Work arrays for one batch size. ``z[i]``: pre-activation of layer i (batch, out_i);
    ``h[i]``: activation of hidden layer i; ``hd[i]``: its dropped-out version (same array as
    ``h[i]`` without dropout); ``mask[i]``/``u[i]``: dropout mask and its uniform draws;
    ``dz[i]``: gradient w.r.t. ``z[i]`` (the last one is the loss gradient)."""

    batch: int
    z: list[np.ndarray]
    h: list[np.ndarray]
    hd: list[np.ndarray]
    mask: list[np.ndarray]
    u: list[np.ndarray]
    dz: list[np.ndarray]
    relu_mask: list[np.ndarray] = field(default_factory=list)


class Network:
    """Dense layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with a hidden activation.

    The output layer is linear (its activation is folded into ``loss``).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Activation,
        loss: Loss,
        *,
        dropout: float = 0.0,
        dtype: type[np.floating] | np.dtype = np.float32,
        threads: int | None = None,
    ) -> None:
        if len(sizes) < 2:
            raise ValueError("a network needs an input and an output size")
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        self.loss = loss
        self.dropout = float(dropout)
        self.keep = 1.0 - self.dropout
        self.dtype = np.dtype(dtype)
        self.shapes = [(self.sizes[i], self.sizes[i + 1]) for i in range(len(self.sizes) - 1)]
        self.n_params = sum(i * o + o for i, o in self.shapes)
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self.grads = np.zeros(self.n_params, dtype=self.dtype)
        self.kernels, self.biases = self._views(self.params)
        self.dkernels, self.dbiases = self._views(self.grads)
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self._extra_grads: list[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]] = []
        self._buffers: dict[int, Buffers] = {}

    def _views(self, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-layer kernel ``(in, out)`` and bias ``(out,)`` views into a flat vector."""
        kernels, biases = [], []
        offset = 0
        for fan_in, fan_out in self.shapes:
            k = fan_in * fan_out
            kernels.append(flat[offset : offset + k].reshape(fan_in, fan_out))
            offset += k
            biases.append(flat[offset : offset + fan_out])
            offset += fan_out
        return kernels, biases

    @property
    def n_layers(self) -> int:
        return len(self.shapes)

    def set_layer(self, i: int, kernel: np.ndarray, bias: np.ndarray) -> None:
        """Copy initial values into layer ``i`` (shapes ``(in, out)`` and ``(out,)``)."""
        np.copyto(self.kernels[i], kernel, casting="same_kind")
        np.copyto(self.biases[i], bias, casting="same_kind")

    def buffers(self, batch: int) -> Buffers:
        """The (cached) work arrays for ``batch`` rows."""
        buf = self._buffers.get(batch)
        if buf is None:
            dt = self.dtype
            outs = [o for _, o in self.shapes]
            hidden = outs[:-1]
            z = [np.empty((batch, o), dt) for o in outs]
            h = [np.empty((batch, o), dt) for o in hidden]
            if self.dropout > 0:
                hd = [np.empty((batch, o), dt) for o in hidden]
                mask = [np.empty((batch, o), dt) for o in hidden]
                u = [np.empty((batch, o), dt) for o in hidden]
            else:
                hd, mask, u = h, [], []
            dz = [np.empty((batch, o), dt) for o in outs]
            relu_mask = [np.empty((batch, o), bool) for o in hidden]
            buf = Buffers(batch, z, h, hd, mask, u, dz, relu_mask)
            self._buffers[batch] = buf
        return buf

    def row_blocks(self, batch: int) -> list[tuple[int, int]]:
        """The row blocks ``(lo, hi)`` a batch is split into: :data:`BLOCKS` equal ones when
        each gets at least :data:`MIN_BLOCK_ROWS` rows, else one. Fixed by the batch size
        alone, so the result never depends on how many threads run the blocks."""
        parts = BLOCKS if batch >= BLOCKS * MIN_BLOCK_ROWS else 1
        return [(batch * k // parts, batch * (k + 1) // parts) for k in range(parts)]

    def _block_grads(self, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Where row block ``k`` writes its kernel and bias gradients: block 0 into
        ``self.grads``, the others into their own flat vectors (summed in after)."""
        if k == 0:
            return self.dkernels, self.dbiases
        while len(self._extra_grads) < k:
            flat = np.zeros(self.n_params, dtype=self.dtype)
            self._extra_grads.append((flat, *self._views(flat)))
        _, dk, db = self._extra_grads[k - 1]
        return dk, db

    def _prepare_masks(
        self,
        buf: Buffers,
        rng: np.random.Generator | None,
        masks: Sequence[np.ndarray] | None,
    ) -> None:
        """Dropout masks of every hidden layer for the whole batch, scaled by 1/keep: drawn
        from ``rng`` layer by layer, or copied from ``masks``."""
        for i in range(self.n_layers - 1):
            mask = buf.mask[i]
            if masks is not None:
                np.copyto(mask, masks[i])
                continue
            if rng is None:
                raise ValueError("dropout in training mode needs an rng")
            u = buf.u[i]
            rng.random(out=u, dtype=self.dtype.type)
            np.less(u, self.keep, out=mask)
            mask *= 1.0 / self.keep

    def _forward_rows(self, x: np.ndarray, buf: Buffers, lo: int, hi: int, drop: bool) -> None:
        """Forward pass of rows ``lo:hi`` of the batch (``x`` holds those rows)."""
        inp = x
        last = self.n_layers - 1
        for i in range(self.n_layers):
            z = buf.z[i][lo:hi]
            np.matmul(inp, self.kernels[i], out=z)  # (rows, in) @ (in, out) -> (rows, out)
            z += self.biases[i]
            if i == last:
                return
            h = buf.h[i][lo:hi]
            self.activation.forward(z, h)
            if drop:
                np.multiply(h, buf.mask[i][lo:hi], out=buf.hd[i][lo:hi])
                inp = buf.hd[i][lo:hi]
            else:
                inp = h

    def _backward_rows(
        self, x: np.ndarray, buf: Buffers, lo: int, hi: int, drop: bool, k: int
    ) -> None:
        """Backward pass of rows ``lo:hi`` given their ``buf.dz[-1]``, into block ``k``'s
        gradients."""
        dkernels, dbiases = self._block_grads(k)
        for i in range(self.n_layers - 1, -1, -1):
            dz = buf.dz[i][lo:hi]
            inp = x if i == 0 else (buf.hd[i - 1] if drop else buf.h[i - 1])[lo:hi]
            np.matmul(inp.T, dz, out=dkernels[i])  # (in, rows) @ (rows, out)
            np.sum(dz, axis=0, out=dbiases[i])
            if i == 0:
                return
            da = buf.dz[i - 1][lo:hi]
            np.matmul(dz, self.kernels[i].T, out=da)  # (rows, out) @ (out, in) -> (rows, in)
            if drop:
                np.multiply(da, buf.mask[i - 1][lo:hi], out=da)
            if self.activation.name == "relu":
                rm = buf.relu_mask[i - 1][lo:hi]
                np.greater(buf.z[i - 1][lo:hi], 0, out=rm)
                np.multiply(da, rm, out=da)
            else:
                zi = buf.z[i - 1][lo:hi]
                self.activation.backward(zi, buf.h[i - 1][lo:hi], da, out=da)

    def forward(
        self,
        x: np.ndarray,
        buf: Buffers,
        *,
        train: bool = False,
        rng: np.random.Generator | None = None,
        masks: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Logits ``(batch, outputs)`` of ``x`` (batch, in), written into ``buf.z[-1]``.

        With ``train`` and dropout, masks are drawn from ``rng`` (or taken from ``masks``,
        already scaled by 1/keep — the gradient checks use that)."""
        drop = train and self.dropout > 0
        if drop:
            self._prepare_masks(buf, rng, masks)
        tasks = [
            partial(self._forward_rows, x[lo:hi], buf, lo, hi, drop)
            for lo, hi in self.row_blocks(x.shape[0])
        ]
        run_all(tasks, self.threads)
        return buf.z[-1]

    def loss_and_grad(
        self,
        x: np.ndarray,
        target: np.ndarray,
        *,
        train: bool = True,
        rng: np.random.Generator | None = None,
        masks: Sequence[np.ndarray] | None = None,
        gather: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> float:
        """Forward, loss and backward on one batch; the gradient lands in ``self.grads``.

        Each row block runs forward, its share of the loss (its rows' sum over the whole
        batch's size) and backward on its own (one thread each); the blocks' gradients are
        then summed in block order. ``gather=(source, index)``: ``x`` is a buffer each block
        first fills with its rows of ``source[index]`` (the copy runs on the blocks' threads
        too)."""
        n = x.shape[0]
        buf = self.buffers(n)
        drop = train and self.dropout > 0
        if drop:
            self._prepare_masks(buf, rng, masks)
        blocks = self.row_blocks(n)
        values = [0.0] * len(blocks)
        for k in range(len(blocks)):
            self._block_grads(k)  # allocated here, not on the threads

        def block(k: int, lo: int, hi: int) -> None:
            xs = x[lo:hi]
            if gather is not None:
                np.take(gather[0], gather[1][lo:hi], axis=0, out=xs)
            self._forward_rows(xs, buf, lo, hi, drop)
            values[k] = self.loss(
                buf.z[-1][lo:hi], target[lo:hi], buf.dz[-1][lo:hi], backward=True, rows=n
            )
            self._backward_rows(xs, buf, lo, hi, drop, k)

        run_all([partial(block, k, lo, hi) for k, (lo, hi) in enumerate(blocks)], self.threads)
        for k in range(1, len(blocks)):
            self.grads += self._extra_grads[k - 1][0]
        return float(sum(values))
