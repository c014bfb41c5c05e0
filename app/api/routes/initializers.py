"""``/v1/initializers``: the catalog of every scheme and every accepted spelling."""

from __future__ import annotations

import difflib
import functools
import re

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from app import initializers as engine
from app.errors import NotFoundError
from app.schemas.tensors import InitializerList, InitializerRead

router = APIRouter(prefix="/v1/initializers", tags=["initializers"])

JSON = "application/json"
CACHE = "public, max-age=3600"


@functools.cache
def _catalog_json() -> bytes:
    """The catalog is fixed for the life of the process: encode it once."""
    return orjson.dumps({"initializers": engine.catalog()})


@functools.cache
def _spellings() -> dict[str, str]:
    """Normalized alias → canonical name, for suggestions."""
    names: dict[str, str] = {}
    for entry in engine.catalog():
        for alias in [entry["name"], *entry["aliases"]]:
            names.setdefault(_normalize(alias), entry["name"])
    return names


def _normalize(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name).lower()


def suggest(name: str, n: int = 3) -> list[str]:
    """Canonical names that look like ``name``."""
    spellings = _spellings()
    close = difflib.get_close_matches(_normalize(name), list(spellings), n=n * 3, cutoff=0.6)
    return list(dict.fromkeys(spellings[c] for c in close))[:n]


def unknown_initializer(exc: engine.UnknownInitializerError, loc: list[str | int]) -> NotFoundError:
    """The 404 for a name no framework uses, with the closest known names."""
    name = str(exc.value)
    hints = suggest(name)
    did_you_mean = f" Did you mean {', '.join(hints)}?" if hints else ""
    return NotFoundError(
        f"Unknown initializer {name!r}.{did_you_mean} GET /v1/initializers lists every "
        "scheme and its aliases.",
        errors=[{"loc": loc, "msg": exc.msg, "input": exc.value}],
    )


@router.get("", response_model=InitializerList)
async def list_initializers() -> Response:
    """Every scheme: params, formula, description, references and each framework's name."""
    return Response(_catalog_json(), media_type=JSON, headers={"Cache-Control": CACHE})


@router.get("/{name}", response_model=InitializerRead, responses={404: {"description": "Unknown"}})
async def read_initializer(name: str) -> Response:
    """One scheme, by any of its aliases."""
    try:
        entry = engine.describe(name)
    except engine.UnknownInitializerError as exc:
        raise unknown_initializer(exc, ["path", "name"]) from None
    return Response(orjson.dumps(entry), media_type=JSON, headers={"Cache-Control": CACHE})
