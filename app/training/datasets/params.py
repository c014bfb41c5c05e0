"""Declared parameters of a dataset reference: validation, defaults, and their listing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.training.datasets.base import DatasetError


@dataclass(frozen=True)
class Param:
    """One parameter of a dataset reference (``{"name": ..., <param>: value}``)."""

    name: str
    kind: str  # "int" | "float" | "bool" | "choice"
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": {"int": "integer", "float": "number", "bool": "boolean", "choice": "string"}[
                self.kind
            ],
            "default": self.default,
            "description": self.description,
        }
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["enum"] = list(self.choices)
        if self.nullable:
            out["nullable"] = True
        return out

    def coerce(self, value: Any) -> Any:
        """The validated value; raises :class:`DatasetError` at ``dataset.<name>``."""
        field = f"dataset.{self.name}"
        if value is None:
            if self.nullable:
                return None
            raise DatasetError(field, value, "must not be null")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise DatasetError(field, value, "must be true or false")
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise DatasetError(field, value, f"must be one of {', '.join(self.choices)}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DatasetError(
                field, value, f"must be a{'n integer' if self.kind == 'int' else ' number'}"
            )
        if self.kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise DatasetError(field, value, "must be an integer")
                value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise DatasetError(field, value, "must be a finite number")
        if self.minimum is not None and value < self.minimum:
            raise DatasetError(field, value, f"must be >= {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise DatasetError(field, value, f"must be <= {self.maximum:g}")
        return value


def parse_params(
    ref: Mapping[str, Any], params: tuple[Param, ...], *, dataset: str, reserved: tuple[str, ...]
) -> dict[str, Any]:
    """Validate ``ref`` against ``params``; unknown keys (other than ``reserved``) are errors."""
    known = {p.name: p for p in params}
    for key in ref:
        if key not in known and key not in reserved:
            accepted = ", ".join(sorted(known)) or "none"
            raise DatasetError(
                f"dataset.{key}",
                ref[key],
                f"unknown parameter for {dataset!r} (accepted: {accepted})",
            )
    return {p.name: p.coerce(ref[p.name]) if p.name in ref else p.default for p in params}


def describe_params(params: tuple[Param, ...]) -> dict[str, dict[str, Any]]:
    return {p.name: p.describe() for p in params}
