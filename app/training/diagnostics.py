"""Per-layer health diagnostics on a fixed batch (initialization and after each epoch).

For every dense layer ``i`` (hidden layers, then the output layer), on the diagnostic batch in
evaluation mode (no dropout):

- ``activation``: the layer's own activation — ``"linear"`` for the output layer, whose
  outputs are the logits — and ``link``: for the output layer the function the loss applies
  to the logits (``"softmax"``, ``"sigmoid"``, or ``"linear"`` for MSE), None for hidden
  layers.
- ``activation_mean`` / ``activation_std``: of the layer's output over all (example, unit)
  entries — the hidden activation, or the raw logits for the output layer.
- ``dead_fraction`` (ReLU-family hidden layers, else None): fraction of units whose
  pre-activation is <= 0 on every example of the batch (a ReLU that outputs 0 throughout).
- ``saturated_fraction`` (sigmoid/tanh hidden layers, else None): fraction of units whose
  output lies within 0.01 of a bound (0/1 for sigmoid, -1/1 for tanh) on every example.
- ``gradient_norm``: Frobenius norm of dLoss/dKernel on the batch; ``bias_gradient_norm``
  likewise for the bias; ``weight_norm``: Frobenius norm of the kernel.
- ``distinct_units``: number of distinct units, a unit being its incoming weights and bias
  (column ``j`` of the kernel plus ``b[j]``); two units count as one when no coordinate
  differs by more than ``1e-3 * max|W, b|``. Symmetric units trained on float32 drift apart
  by rounding noise only (~1e-5 relative), well inside that; random initializations are
  ~1 apart. A constant initialization gives 1 and stays at 1 (symmetry never broken).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from app.training.network import Network

__all__ = ["SATURATION_MARGIN", "distinct_columns", "layer_diagnostics", "warm_up"]

SATURATION_MARGIN = 0.01
DISTINCT_RTOL = 1e-3  # float32 rounding noise between symmetric units is ~1e-5 relative


def distinct_columns(kernel: np.ndarray, bias: np.ndarray, rtol: float = DISTINCT_RTOL) -> int:
    """Number of distinct units (kernel column + bias), two units being the same when every
    coordinate differs by at most ``rtol * max|value|`` (Chebyshev distance; non-finite
    values count as 0).

    Greedy clustering in the order of a fixed random projection: units within the tolerance
    have projections within ``tol * ||r||_1``, so each unit is compared only with the
    representatives inside that window (near-linear for distinct units). Compiled
    (:func:`_distinct_units`): in NumPy calls per pair, plus the float64 copy of the kernel,
    it took ~25 ms per diagnostics call of a 784-256-128-10 network."""
    if kernel.shape[1] == 0:
        return 0
    r = np.random.default_rng(0).uniform(-1.0, 1.0, size=kernel.shape[0] + 1)
    return int(_distinct_units(kernel, bias, r, float(rtol)))


@njit(cache=True, nogil=True)
def _value(kernel: np.ndarray, bias: np.ndarray, c: int, j: int) -> float:  # pragma: no cover
    """Coordinate ``c`` of unit ``j`` (the bias last) as float64, non-finite as 0."""
    v = float(kernel[c, j]) if c < kernel.shape[0] else float(bias[j])
    return v if np.isfinite(v) else 0.0


@njit(cache=True, nogil=True)
def _distinct_units(
    kernel: np.ndarray, bias: np.ndarray, r: np.ndarray, rtol: float
) -> int:  # pragma: no cover - compiled
    """:func:`distinct_columns` on ``(in, out)`` ``kernel`` and ``(out,)`` ``bias``, float64
    arithmetic; ``r`` the projection (one coordinate per input, then the bias's)."""
    dim, n = kernel.shape[0] + 1, kernel.shape[1]
    top = 0.0
    proj = np.zeros(n)
    for c in range(dim):
        for j in range(n):
            v = _value(kernel, bias, c, j)
            top = max(top, abs(v))
            proj[j] += v * r[c]
    tol = rtol * top
    if tol == 0.0:
        return 1
    window = tol * np.sum(np.abs(r))
    order = np.argsort(proj, kind="mergesort")
    reps = np.empty(n, np.int64)  # representatives, in increasing projection order
    n_reps = 0
    for j in order:
        k = n_reps - 1
        same = False
        while k >= 0 and proj[j] - proj[reps[k]] <= window:
            rep = reps[k]
            same = True
            for c in range(dim):
                if abs(_value(kernel, bias, c, j) - _value(kernel, bias, c, rep)) > tol:
                    same = False
                    break
            if same:
                break
            k -= 1
        if not same:
            reps[n_reps] = j
            n_reps += 1
    return n_reps


def warm_up() -> None:
    """Load (or compile) :func:`_distinct_units` for float32 and float64 networks now
    (``app.training.warm_up``)."""
    for dtype in (np.float32, np.float64):
        distinct_columns(np.eye(2, dtype=dtype), np.zeros(2, dtype))


def _f(x: float | np.floating) -> float | None:
    v = float(x)
    return v if np.isfinite(v) else None


def layer_diagnostics(net: Network, x: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """Diagnostics on ``(x, target)``; returns ``{"loss", "layers": [...]}``.

    Runs one forward/backward pass (overwriting the network's gradient vector, so call it
    between optimizer steps)."""
    loss = net.loss_and_grad(x, target, train=False)
    buf = net.buffers(x.shape[0])
    act = net.activation
    layers: list[dict[str, Any]] = []
    last = net.n_layers - 1
    for i in range(net.n_layers):
        hidden = i < last
        out = buf.h[i] if hidden else buf.z[i]
        z = buf.z[i]
        dead = saturated = None
        if hidden and act.rectifier:
            dead = float(np.mean(np.all(z <= 0, axis=0)))
        bounds = act.bounds if hidden else None
        if bounds is not None:
            lo, hi = bounds
            near = (out <= lo + SATURATION_MARGIN) | (out >= hi - SATURATION_MARGIN)
            saturated = float(np.mean(np.all(near, axis=0)))
        layers.append(
            {
                "layer": i,
                "name": f"dense_{i}" if hidden else "output",
                "units": int(z.shape[1]),
                # The output layer is linear (its outputs are the logits); the loss's link
                # (softmax, sigmoid, or linear for MSE) is applied inside the loss.
                "activation": act.name if hidden else "linear",
                "link": None if hidden else net.loss.output_activation,
                "activation_mean": _f(np.mean(out, dtype=np.float64)),
                "activation_std": _f(np.std(out, dtype=np.float64)),
                "dead_fraction": dead,
                "saturated_fraction": saturated,
                "gradient_norm": _f(np.linalg.norm(net.dkernels[i].astype(np.float64))),
                "bias_gradient_norm": _f(np.linalg.norm(net.dbiases[i].astype(np.float64))),
                "weight_norm": _f(np.linalg.norm(net.kernels[i].astype(np.float64))),
                "distinct_units": distinct_columns(net.kernels[i], net.biases[i]),
            }
        )
    return {"loss": _f(loss), "layers": layers}
