"""Errors of the model core: each names the spec field (``layers[3].units``) and its value."""

from __future__ import annotations

from typing import Any


class ModelSpecError(ValueError):
    """A model spec field with an invalid value (422). ``field``: ``layers[3].units``."""

    def __init__(self, field: str, value: Any, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.value = value
        self.msg = msg


class ModelTooLargeError(ModelSpecError):
    """A model over a configured limit (parameters, layers, one weight, orthogonal work) (413)."""


class ModelUnsupportedError(ModelSpecError):
    """A valid model that one artifact cannot express (TF.js cannot run a layer) (422)."""
