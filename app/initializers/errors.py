"""Errors of the initializer engine. Pure Python: the API maps them onto HTTP statuses."""

from __future__ import annotations

from typing import Any


class InitializerError(ValueError):
    """An invalid parameter, shape, dtype or combination.

    ``field`` is a dotted path naming what was wrong (``"params.scale"``, ``"shape"``,
    ``"dtype"``, ``"compat"``), ``value`` the value received, ``msg`` what is wrong with it.
    """

    def __init__(self, field: str, value: Any, msg: str) -> None:
        super().__init__(f"{field}: {msg} (got {value!r})")
        self.field = field
        self.value = value
        self.msg = msg


class UnknownInitializerError(InitializerError):
    """A name no framework spelling resolves to; ``suggestions`` holds close matches."""

    def __init__(self, value: Any, suggestions: list[str] | None = None) -> None:
        self.suggestions = list(suggestions or [])
        hint = (
            f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if (self.suggestions)
            else "; GET /v1/initializers lists every accepted name"
        )
        super().__init__("name", value, f"unknown initializer{hint}")
