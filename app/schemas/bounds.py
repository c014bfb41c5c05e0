"""Bounds every request value is held to at the boundary, before anything is computed.

Typed integer fields carry explicit maximums (``Field(le=...)``). Free-form JSON values
(initializer references, dataset parameters, activation objects) are checked by
:func:`check_json`: their integers must fit in 64 bits (orjson, Redis and the ETag hash cannot
carry more) and their nesting is bounded (deeply nested values would exhaust the recursion
limit of every later step that walks them: validation, ``repr``, error rendering).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Strict

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Seeds everywhere are 32-bit (Keras, TF.js and the engine's seeding agree on this range).
SEED_MAX = 2**32 - 1
# Tensor dimensions and explicit fans: far beyond any tensor that fits in memory, and small
# enough that products of a few of them (fans, element counts) stay exact and printable.
MAX_DIM = 2**62
MAX_FAN = 2**62
# Counts a job may ask for (batch size, epochs, steps, records): the per-setting limits
# (``INITLAB_MAX_*``) are checked later and say how to get under them; these only keep the
# values in a range every later step can carry.
MAX_COUNT = 2**31 - 1


def whole_float(value: Any) -> Any:
    """A whole-number float (``2.0``, ``1e3``) as the integer JSON Schema counts it as."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Numbers and booleans of a JSON body, held to JSON's types (pydantic's strict mode): true and
# false are not numbers, "7" is not a number, 1 is not a boolean; an integer is a valid float,
# and a whole-number float (2.0, what `n / k` serialises to) a valid integer, as in the
# published JSON Schema.
JsonInt = Annotated[int, Strict(), BeforeValidator(whole_float)]
JsonFloat = Annotated[float, Strict()]
JsonBool = Annotated[bool, Strict()]
# Nesting of a free-form JSON value (an initializer reference is 3 levels deep).
MAX_JSON_DEPTH = 32


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH, *, int64: bool = True) -> str | None:
    """Why ``value`` (a parsed JSON value) cannot be accepted, or None if it can: nested
    deeper than ``max_depth``, or (``int64``) an integer outside the 64-bit range.

    Iterative, so arbitrarily deep input cannot exhaust the stack while being checked.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = f" at {path.lstrip('.')}" if path else ""
        if isinstance(item, bool) or item is None or isinstance(item, float | str):
            continue
        if isinstance(item, int):
            if int64 and not INT64_MIN <= item <= INT64_MAX:
                return f"integer{where} is outside the 64-bit range [-2**63, 2**63 - 1]"
            continue
        if depth >= max_depth:
            return f"nested deeper than {max_depth} levels{where}"
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{path}.{i}", depth + 1) for i, v in enumerate(item))
    return None


def check_json(value: Any) -> Any:
    """A pydantic validator: ``value`` unchanged, or a ``ValueError`` saying what is wrong."""
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value
