"""First-order optimizers with PyTorch 2.x semantics, updating one flat parameter vector in place.

Every optimizer owns its state vectors and one scratch vector, all the size of the
parameters, allocated once; ``step()`` allocates nothing. Formulas (``g`` the gradient,
``p`` the parameters, ``t`` the step count from 1), as in ``torch.optim``:

- SGD: ``g += wd p``; with momentum ``b = g`` (first step) else ``b = mu b + g``;
  Nesterov ``g = g + mu b`` else ``g = b``; ``p -= lr g``.
- Adam (Kingma & Ba 2015): ``g += wd p``; ``m = b1 m + (1-b1) g``;
  ``v = b2 v + (1-b2) g^2``; ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
- AdamW (Loshchilov & Hutter 2019): ``p *= 1 - lr wd`` (decoupled), then Adam without L2.
- RMSprop (Hinton 2012; torch form): ``g += wd p``; ``s = alpha s + (1-alpha) g^2``;
  centered: ``c = alpha c + (1-alpha) g``, ``d = sqrt(s - c^2) + eps`` else
  ``d = sqrt(s) + eps``; momentum ``b = mu b + g/d``, ``p -= lr b`` else ``p -= lr g/d``.

Weight decay is applied to every parameter, biases included (torch's single param group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OPTIMIZERS", "Optimizer", "OptimizerSpec", "make_optimizer"]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw", "rmsprop")

# torch.optim defaults (SGD's lr default is ours: torch 2.x uses 1e-3).
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.01}
DEFAULT_WEIGHT_DECAY = {"sgd": 0.0, "adam": 0.0, "adamw": 0.01, "rmsprop": 0.0}


@dataclass(frozen=True)
class OptimizerSpec:
    """Optimizer settings; fields not used by ``name`` keep their defaults."""

    name: str = "adam"
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    momentum: float = 0.0  # sgd, rmsprop
    nesterov: bool = False  # sgd
    beta1: float = 0.9  # adam, adamw
    beta2: float = 0.999  # adam, adamw
    eps: float = 1e-8  # adam, adamw, rmsprop
    alpha: float = 0.99  # rmsprop smoothing constant
    centered: bool = False  # rmsprop

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
        }
        if self.name == "sgd":
            out.update(momentum=self.momentum, nesterov=self.nesterov)
        elif self.name in ("adam", "adamw"):
            out.update(beta1=self.beta1, beta2=self.beta2, eps=self.eps)
        else:
            out.update(alpha=self.alpha, eps=self.eps, momentum=self.momentum,
                       centered=self.centered)
        return out


class Optimizer:
    """Base: holds the flat parameter and gradient vectors and a scratch vector."""

    def __init__(self, spec: OptimizerSpec, params: np.ndarray, grads: np.ndarray) -> None:
        self.spec = spec
        self.params = params
        self.grads = grads
        self.lr = spec.learning_rate
        self.wd = spec.weight_decay
        self.t = 0
        self._tmp = np.empty_like(params)

    def _l2(self) -> None:
        if self.wd:
            # g += wd * p
            np.multiply(self.params, self.wd, out=self._tmp)
            self.grads += self._tmp

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, spec: OptimizerSpec, params: np.ndarray, grads: np.ndarray) -> None:
        super().__init__(spec, params, grads)
        self.mu = spec.momentum
        self.buf = np.zeros_like(params) if self.mu else None

    def step(self) -> None:
        self.t += 1
        self._l2()
        g, tmp = self.grads, self._tmp
        if self.buf is not None:
            if self.t == 1:
                np.copyto(self.buf, g)
            else:
                self.buf *= self.mu
                self.buf += g
            if self.spec.nesterov:
                np.multiply(self.buf, self.mu, out=tmp)
                g += tmp
            else:
                g = self.buf
        np.multiply(g, self.lr, out=tmp)
        self.params -= tmp


class Adam(Optimizer):
    """Adam with the moments kept pre-divided by ``1 - beta``: ``M = m / (1-b1)``,
    ``V = v / (1-b2)``, so ``M = b1 M + g`` and ``V = b2 V + g^2`` need no scaling pass, and
    the update folds every scalar into the denominator:
    ``p -= M / (sqrt(V) * sqrt(1-b2) / sqrt(1-b2^t) / s + eps / s)`` with
    ``s = lr (1-b1) / (1-b1^t)`` — the same value as torch's formula, ten vector passes
    instead of fifteen."""

    decoupled = False

    def __init__(self, spec: OptimizerSpec, params: np.ndarray, grads: np.ndarray) -> None:
        super().__init__(spec, params, grads)
        self.m = np.zeros_like(params)  # M = m / (1 - b1)
        self.v = np.zeros_like(params)  # V = v / (1 - b2)
        self.b1 = spec.beta1
        self.b2 = spec.beta2
        self.eps = spec.eps

    @property
    def exp_avg(self) -> np.ndarray:
        """torch's ``exp_avg`` (first moment)."""
        return self.m * (1.0 - self.b1)

    @property
    def exp_avg_sq(self) -> np.ndarray:
        """torch's ``exp_avg_sq`` (second moment)."""
        return self.v * (1.0 - self.b2)

    def step(self) -> None:
        self.t += 1
        p, g, m, v, tmp = self.params, self.grads, self.m, self.v, self._tmp
        if self.decoupled:
            if self.wd:
                p *= 1.0 - self.lr * self.wd
        else:
            self._l2()
        b1, b2 = self.b1, self.b2
        m *= b1
        m += g
        v *= b2
        np.square(g, out=tmp)
        v += tmp
        s = self.lr * (1.0 - b1) / (1.0 - b1**self.t)
        c = math.sqrt(1.0 - b2) / math.sqrt(1.0 - b2**self.t)
        np.sqrt(v, out=tmp)
        tmp *= c / s
        tmp += self.eps / s
        np.divide(m, tmp, out=tmp)
        p -= tmp


class AdamW(Adam):
    decoupled = True


class RMSprop(Optimizer):
    def __init__(self, spec: OptimizerSpec, params: np.ndarray, grads: np.ndarray) -> None:
        super().__init__(spec, params, grads)
        self.sq = np.zeros_like(params)
        self.avg = np.zeros_like(params) if spec.centered else None
        self.mu = spec.momentum
        self.buf = np.zeros_like(params) if self.mu else None
        self.alpha = spec.alpha
        self.eps = spec.eps

    def step(self) -> None:
        self.t += 1
        self._l2()
        g, tmp, sq, a = self.grads, self._tmp, self.sq, self.alpha
        # s = alpha s + (1 - alpha) g^2
        sq *= a
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - a
        sq += tmp
        if self.avg is not None:
            # c += (1 - alpha) (g - c);  d = sqrt(s - c^2) + eps
            np.subtract(g, self.avg, out=tmp)
            tmp *= 1.0 - a
            self.avg += tmp
            np.multiply(self.avg, self.avg, out=tmp)
            np.subtract(sq, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(sq, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)  # g / d
        if self.buf is not None:
            self.buf *= self.mu
            self.buf += tmp
            np.multiply(self.buf, self.lr, out=tmp)
        else:
            tmp *= self.lr
        self.params -= tmp


_CLASSES: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
}


def make_optimizer(spec: OptimizerSpec, params: np.ndarray, grads: np.ndarray) -> Optimizer:
    """The optimizer for ``spec`` over the flat ``params`` / ``grads`` vectors."""
    return _CLASSES[spec.name](spec, params, grads)
