"""Declared parameters: one vocabulary for initializer and dataset parameters.

A ``Param`` names its JSON-Schema type (``PARAM_TYPES``), default, range, choices and meaning;
``validate`` checks a received value and ``describe`` is its catalogue entry
(``{type, default, minimum?, maximum?, choices?, description}``, docs api.md). Errors are
``InitializerError(field, value, msg)``; other layers re-raise them as their own error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.initializers.errors import InitializerError

ParamType = Literal["number", "integer", "string", "boolean", "array"]
# JSON-Schema type names. "array" is a list of integers (axes); a bare integer is accepted as
# a single axis and kept as given.
PARAM_TYPES: tuple[str, ...] = ("number", "integer", "string", "boolean", "array")
_ARTICLE = {"integer": "an integer", "array": "a list of integers"}


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default, range and meaning (the catalogue shows all of it)."""

    name: str
    type: ParamType
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] | None = None
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"Param {self.name}: type {self.type!r} not in {PARAM_TYPES}")

    def validate(self, value: Any, field: str) -> Any:
        """The validated value (numbers converted, -0.0 read as 0.0); InitializerError if not."""
        if value is None:
            if self.nullable:
                return None
            raise InitializerError(field, value, f"must be {self._kind()}, not null")
        if self.type == "number":
            return self._bounded(self._float(value, field), value, field)
        if self.type == "integer":
            return self._bounded(self._int(value, field), value, field)
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise InitializerError(field, value, "must be true or false")
            return value
        if self.type == "array":
            return self._axes(value, field)
        if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
            raise InitializerError(field, value, f"must be {self._kind()}")
        return value

    def _kind(self) -> str:
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        return _ARTICLE.get(self.type, f"a {self.type}")

    @staticmethod
    def _is_number(value: Any) -> bool:
        return not isinstance(value, bool) and isinstance(
            value, int | float | np.integer | np.floating
        )

    def _float(self, value: Any, field: str) -> float:
        if not self._is_number(value):
            raise InitializerError(field, value, "must be a number")
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            raise InitializerError(field, value, "must be finite (no NaN or infinity)")
        try:
            return float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
        except OverflowError:
            raise InitializerError(
                field, value, "must be within float64's range (|x| ≤ 1.8e308)"
            ) from None

    def _int(self, value: Any, field: str) -> int:
        if not self._is_number(value):
            raise InitializerError(field, value, "must be an integer")
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            raise InitializerError(field, value, "must be finite (no NaN or infinity)")
        # Integers stay exact however large (float(10**400) would overflow).
        if isinstance(value, float | np.floating) and not float(value).is_integer():
            raise InitializerError(field, value, "must be an integer")
        return int(value)

    def _bounded(self, number: float, value: Any, field: str) -> Any:
        if self.minimum is not None:
            if self.exclusive_minimum and not number > self.minimum:
                raise InitializerError(field, value, f"must be > {self.minimum:g}")
            if not self.exclusive_minimum and not number >= self.minimum:
                raise InitializerError(field, value, f"must be ≥ {self.minimum:g}")
        if self.maximum is not None:
            if self.exclusive_maximum and not number < self.maximum:
                raise InitializerError(field, value, f"must be < {self.maximum:g}")
            if not self.exclusive_maximum and not number <= self.maximum:
                raise InitializerError(field, value, f"must be ≤ {self.maximum:g}")
        return number

    def _axes(self, value: Any, field: str) -> int | list[int]:
        def is_int(item: Any) -> bool:
            return not isinstance(item, bool) and isinstance(item, int | np.integer)

        if is_int(value):
            return int(value)
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise InitializerError(field, value, "must be an integer or a list of integers")
        if not all(is_int(item) for item in value):
            raise InitializerError(field, value, "must be an integer or a list of integers")
        return [int(item) for item in value]

    def describe(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": self.type, "default": self.default}
        if self.minimum is not None:
            entry["minimum"] = self.minimum
            if self.exclusive_minimum:
                entry["exclusive_minimum"] = True
        if self.maximum is not None:
            entry["maximum"] = self.maximum
            if self.exclusive_maximum:
                entry["exclusive_maximum"] = True
        if self.choices is not None:
            entry["choices"] = list(self.choices)
        if self.nullable:
            entry["nullable"] = True
        entry["description"] = self.description
        return entry
