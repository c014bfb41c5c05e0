"""What every layer module shares: shapes, the weights a layer makes, and a field reader
whose every refusal names ``layers[i].<field>`` and its value.

Shapes exclude the batch axis; a dimension a topology leaves open (``None``: Keras
``Input(shape=(None, 64))``) stays ``None`` through inference. Weights must have known shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.models.errors import ModelSpecError

Shape = tuple[int | None, ...]

# Activations Keras 3 and TF.js 4.22 both know (TF.js reads the snake_case names).
ACTIVATIONS: tuple[str, ...] = (
    "linear",
    "relu",
    "relu6",
    "elu",
    "selu",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softmax",
    "softplus",
    "softsign",
    "swish",
    "gelu",
)
ANY_RANK = tuple(range(1, 64))


@dataclass(frozen=True)
class WeightShape:
    """One weight a layer creates: ``role`` names its ``<role>_initializer`` config field."""

    name: str
    shape: tuple[int, ...]
    role: str
    # LSTM ``unit_forget_bias``: the block [units, 2*units) of the bias is ones.
    forget_units: int | None = None
    # Where ``<role>_initializer`` lives: the keys from the layer's config down to the dict
    # holding it (``("layer",)`` for a wrapper's inner layer; ``()``: the layer's own config).
    owner: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inferred:
    """What a layer makes of its input: its canonical config, output shape and weights."""

    config: dict[str, Any]
    output_shape: Shape
    weights: tuple[WeightShape, ...]


class Fields:
    """Reads one layer's config fields, each refusal naming ``layers[i].<field>``.

    ``out`` collects the canonical value of every field read (defaults filled in)."""

    def __init__(self, raw: Mapping[str, Any], loc: str) -> None:
        self.raw = raw
        self.loc = loc
        self.out: dict[str, Any] = {}

    def fail(self, key: str, msg: str) -> ModelSpecError:
        return ModelSpecError(f"{self.loc}.{key}", self.raw.get(key), msg)

    def shape_error(self, shape: Shape, msg: str) -> ModelSpecError:
        """The layer cannot take this input (named by its ``type``)."""
        return ModelSpecError(
            f"{self.loc}.type",
            self.raw.get("type"),
            f"{msg}; got input shape {list(shape)} (batch excluded)",
        )

    def rank(self, shape: Shape, ranks: tuple[int, ...], what: str) -> None:
        if len(shape) not in ranks:
            want = " or ".join(str(r) for r in ranks) if len(ranks) < 4 else f">= {ranks[0]}"
            raise self.shape_error(shape, f"needs an input of rank {want} {what}")

    def known(self, shape: Shape, axis: int, what: str) -> int:
        """``shape[axis]``, which a weight's shape needs: refused when ``None``."""
        size = shape[axis]
        if size is None:
            raise self.shape_error(shape, f"needs a known {what} axis to size its weights")
        return size

    def integer(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self.raw.get(key, default)
        if value is None:
            raise self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}")
        self.out[key] = value
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "must be a number")
        if not low <= value < high:
            raise self.fail(key, f"must be in [{low}, {high})")
        self.out[key] = float(value)
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        self.out[key] = value
        return value

    def choice(self, key: str, default: str | None, options: tuple[str, ...]) -> str:
        value = self.raw.get(key, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}")
        assert isinstance(value, str)
        self.out[key] = value
        return value

    def ints(self, key: str, default: int | None, n: int, *, minimum: int = 1) -> tuple[int, ...]:
        """An int or a list of ``n`` ints (``kernel_size``, ``strides``)."""
        value = self.raw.get(key, default)
        if value is None:
            raise self.fail(key, "is required")
        items = [value] * n if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(items, list | tuple)
            or len(items) != n
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in items)
        ):
            raise self.fail(key, f"must be an integer >= {minimum} or a list of {n} of them")
        self.out[key] = list(items)
        return tuple(items)

    def axis(self, shape: Shape) -> int:
        """``axis`` (Keras counts the batch axis: -1 is the last, 0 the batch) → its size."""
        value = self.raw.get("axis", -1)
        rank = len(shape) + 1
        if isinstance(value, bool) or not isinstance(value, int) or not -rank <= value < rank:
            raise self.fail("axis", f"must be an integer in [{-rank}, {rank - 1}]")
        if value % rank == 0:
            raise self.fail("axis", "cannot be the batch axis")
        self.out["axis"] = value
        return self.known(shape, value % rank - 1, f"axis {value}")
