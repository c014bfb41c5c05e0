"""Declared parameters of a dataset reference: validation, defaults, and their listing.

The declarations are ``app.initializers.params.Param`` (one vocabulary for every parameter the
service publishes: ``number | integer | string | boolean | array``); errors are re-raised as
``DatasetError`` at ``dataset.<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.initializers.errors import InitializerError
from app.initializers.params import Param
from app.training.datasets.base import DatasetError

__all__ = ["Param", "describe_params", "parse_params"]


def _coerce(param: Param, value: Any) -> Any:
    try:
        return param.validate(value, f"dataset.{param.name}")
    except InitializerError as exc:
        raise DatasetError(exc.field, exc.value, exc.msg) from None


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
    return {p.name: _coerce(p, ref[p.name]) if p.name in ref else p.default for p in params}


def describe_params(params: tuple[Param, ...]) -> dict[str, dict[str, Any]]:
    return {p.name: p.describe() for p in params}
