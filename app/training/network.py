"""A dense feed-forward network with flat parameter storage and preallocated batch buffers.

Kernel layout is Keras's ``(in, out)``: a layer computes ``z = x @ W + b`` with
``(batch, in) @ (in, out) -> (batch, out)``. All kernels and biases are views into ONE flat
parameter vector (and their gradients into one flat gradient vector), so an optimizer updates
every parameter with a handful of whole-vector NumPy calls.

Per batch size the network keeps one set of buffers (pre-activations, activations, dropout
masks, backward scratch); forward and backward write into them with ``out=`` and allocate
nothing proportional to the layer sizes (a few tiny temporaries for the loss aside).

Dropout is inverted dropout on every hidden layer's output: ``h * mask / keep`` with
``mask ~ Bernoulli(keep)`` drawn from the generator passed in; off in evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.training.activations import Activation
from app.training.losses import Loss

__all__ = ["Buffers", "Network", "buffer_bytes"]


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
        self.kernels: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        self.dkernels: list[np.ndarray] = []
        self.dbiases: list[np.ndarray] = []
        offset = 0
        for fan_in, fan_out in self.shapes:
            k = fan_in * fan_out
            self.kernels.append(self.params[offset : offset + k].reshape(fan_in, fan_out))
            self.dkernels.append(self.grads[offset : offset + k].reshape(fan_in, fan_out))
            offset += k
            self.biases.append(self.params[offset : offset + fan_out])
            self.dbiases.append(self.grads[offset : offset + fan_out])
            offset += fan_out
        self._buffers: dict[int, Buffers] = {}

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
        inp = x
        last = self.n_layers - 1
        drop = train and self.dropout > 0
        for i in range(self.n_layers):
            z = buf.z[i]
            np.matmul(inp, self.kernels[i], out=z)  # (batch, in) @ (in, out) -> (batch, out)
            z += self.biases[i]
            if i == last:
                break
            h = buf.h[i]
            self.activation.forward(z, h)
            if drop:
                mask = buf.mask[i]
                if masks is not None:
                    np.copyto(mask, masks[i])
                else:
                    if rng is None:
                        raise ValueError("dropout in training mode needs an rng")
                    u = buf.u[i]
                    rng.random(out=u, dtype=self.dtype.type)
                    np.less(u, self.keep, out=mask)
                    mask *= 1.0 / self.keep
                np.multiply(h, mask, out=buf.hd[i])
                inp = buf.hd[i]
            else:
                inp = h
        return buf.z[last]

    def backward(self, x: np.ndarray, buf: Buffers, *, train: bool = True) -> None:
        """Gradients of the loss into ``self.grads`` given ``buf.dz[-1]`` = dLoss/dlogits.

        Uses the buffers of the preceding ``forward`` on the same ``x``."""
        drop = train and self.dropout > 0
        for i in range(self.n_layers - 1, -1, -1):
            dz = buf.dz[i]
            inp = x if i == 0 else (buf.hd[i - 1] if drop else buf.h[i - 1])
            np.matmul(inp.T, dz, out=self.dkernels[i])  # (in, batch) @ (batch, out)
            np.sum(dz, axis=0, out=self.dbiases[i])
            if i == 0:
                break
            da = buf.dz[i - 1]
            np.matmul(dz, self.kernels[i].T, out=da)  # (batch, out) @ (out, in) -> (batch, in)
            if drop:
                np.multiply(da, buf.mask[i - 1], out=da)
            if self.activation.name == "relu":
                rm = buf.relu_mask[i - 1]
                np.greater(buf.z[i - 1], 0, out=rm)
                np.multiply(da, rm, out=da)
            else:
                self.activation.backward(buf.z[i - 1], buf.h[i - 1], da, out=da)

    def loss_and_grad(
        self,
        x: np.ndarray,
        target: np.ndarray,
        *,
        train: bool = True,
        rng: np.random.Generator | None = None,
        masks: Sequence[np.ndarray] | None = None,
    ) -> float:
        """Forward, loss and backward on one batch; the gradient lands in ``self.grads``."""
        buf = self.buffers(x.shape[0])
        logits = self.forward(x, buf, train=train, rng=rng, masks=masks)
        value = self.loss(logits, target, buf.dz[-1], backward=True)
        self.backward(x, buf, train=train)
        return value
