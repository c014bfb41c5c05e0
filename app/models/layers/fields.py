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
    # TF.js 4.22's name for it, where it differs from Keras 3's (DepthwiseConv2D's
    # ``depthwise_kernel``; a TimeDistributed inner layer's weights carry no inner name there).
    tfjs_name: str | None = None
    # This weight's framework default where it differs from its role's (an initializer
    # reference; TF.js SeparableConv2D's depthwise kernel is glorotUniform, not glorotNormal).
    default: Any = None


@dataclass(frozen=True)
class Inferred:
    """What a layer makes of its input: its canonical config, output shape and weights."""

    config: dict[str, Any]
    output_shape: Shape
    weights: tuple[WeightShape, ...]
    # Outputs after the first (Bidirectional with merge_mode None: the backward output).
    more_outputs: tuple[Shape, ...] = ()

    @property
    def outputs(self) -> tuple[Shape, ...]:
        return (self.output_shape, *self.more_outputs)


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

    def number(
        self, key: str, default: float | None, *, low: float, high: float, closed: bool = False
    ) -> float:
        """A number in ``[low, high)`` (``[low, high]`` when ``closed``)."""
        value = self.raw.get(key, default)
        if value is None:
            raise self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "must be a number")
        if not (low <= value <= high if closed else low <= value < high):
            raise self.fail(key, f"must be in [{low}, {high}{']' if closed else ')'}")
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

    def data_format(self) -> bool:
        """``data_format`` (Keras's default ``channels_last``); True for channels_first."""
        fmt = self.choice("data_format", "channels_last", ("channels_last", "channels_first"))
        return fmt == "channels_first"

    def optional_number(self, key: str, *, low: float, high: float) -> float | None:
        """A number or null (ReLU ``max_value``)."""
        if self.raw.get(key) is None:
            self.out[key] = None
            return None
        return self.number(key, None, low=low, high=high)

    def int_list(self, key: str, *, minimum: int, allow_none: bool = False) -> list[int] | None:
        """A list of integers >= ``minimum`` (Reshape ``target_shape``, Permute ``dims``)."""
        value = self.raw.get(key)
        if value is None and allow_none:
            self.out[key] = None
            return None
        if (
            not isinstance(value, list | tuple)
            or not value
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value)
        ):
            raise self.fail(key, f"must be a non-empty list of integers >= {minimum}")
        self.out[key] = list(value)
        return list(value)

    def pairs(self, key: str, default: Any, n: int) -> tuple[tuple[int, int], ...]:
        """Padding or cropping: an int, ``n`` ints (symmetric per axis) or ``n`` pairs; the
        canonical form is a pair for ``n == 1`` (``(1, 1)``), else ``n`` pairs, as Keras writes."""
        value = self.raw.get(key, default)

        def pair(v: Any) -> tuple[int, int] | None:
            if isinstance(v, int) and not isinstance(v, bool):
                return (v, v) if v >= 0 else None
            ok = isinstance(v, list | tuple) and len(v) == 2
            if ok and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
                return (v[0], v[1])
            return None

        items: tuple[tuple[int, int], ...] | None
        if n == 1:
            got = pair(value)
            items = None if got is None else (got,)
        elif isinstance(value, list | tuple) and len(value) == n:
            found = [pair(v) for v in value]
            items = None if None in found else tuple(p for p in found if p is not None)
        else:
            got = pair(value) if isinstance(value, int) else None
            items = None if got is None else (got,) * n
        if items is None:
            raise self.fail(key, f"must be an integer >= 0, or {n} of them, or {n} pairs")
        self.out[key] = list(items[0]) if n == 1 else [list(p) for p in items]
        return items

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

    def axis_index(self, shape: Shape) -> int:
        """``axis`` (Keras counts the batch axis: -1 is the last, 0 the batch) → its index in
        ``shape`` (batch excluded)."""
        value = self.raw.get("axis", -1)
        rank = len(shape) + 1
        if isinstance(value, bool) or not isinstance(value, int) or not -rank <= value < rank:
            raise self.fail("axis", f"must be an integer in [{-rank}, {rank - 1}]")
        if value % rank == 0:
            raise self.fail("axis", "cannot be the batch axis")
        self.out["axis"] = value
        return value % rank - 1

    def axis(self, shape: Shape) -> int:
        """``axis``'s size, which the weights need (known)."""
        index = self.axis_index(shape)
        return self.known(shape, index, f"axis {self.out['axis']}")
