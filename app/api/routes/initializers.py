"""``/v1/initializers``: the catalog of every scheme and every accepted spelling."""

from __future__ import annotations

import functools

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


def unknown_initializer(exc: engine.UnknownInitializerError, loc: list[str | int]) -> NotFoundError:
    """The 404 for a name no framework uses, with the closest known names."""
    name = str(exc.value)
    hints = exc.suggestions
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
    except engine.InitializerError as exc:  # not a name at all (blank, control characters)
        raise NotFoundError(f"No initializer {name!r}: {exc.msg}.") from None
    return Response(orjson.dumps(entry), media_type=JSON, headers={"Cache-Control": CACHE})
