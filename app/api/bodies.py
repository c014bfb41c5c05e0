"""Request bodies: the JSON media-type check (415) and JSON parsing (422) for the endpoints
that read their body themselves. The size limit (413) is the application's
(``FastAPI(max_body_size=...)``, see ``app.main``), applied while the body is received.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from app.api.errors import header_text
from app.errors import InitlabError, InvalidInputError


class UnsupportedMediaTypeError(InitlabError):
    """A request body in a media type the endpoint does not read (415)."""

    status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"
    header = "content-type"


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or any ``+json`` type (``application/merge-patch+json``), with
    or without parameters such as ``charset``."""
    media, _ = parse_options_header(content_type)
    main, slash, sub = media.decode("latin-1").partition("/")
    return slash == "/" and main == "application" and (sub == "json" or sub.endswith("+json"))


def require_json(request: Request) -> None:
    """415 unless the request says its body is JSON."""
    content_type = request.headers.get("content-type")
    if content_type is not None and is_json_media_type(content_type):
        return
    shown = "none" if content_type is None else repr(header_text(content_type)[:200])
    raise UnsupportedMediaTypeError(
        f"Content-Type {shown} is not accepted: send the body as JSON with "
        "Content-Type: application/json.",
        errors=[
            {
                "loc": ["header", "content-type"],
                "msg": "must be application/json (or a +json type)",
                "input": content_type,
            }
        ],
    )


async def json_body(request: Request) -> bytes:
    """The raw body of a JSON request (415 for another media type)."""
    require_json(request)
    return await request.body()


def parse_json(raw: bytes) -> Any:
    """The JSON value in ``raw``; 422 naming ``body`` and the parser's reason otherwise.

    pydantic's parser (as ``Model.model_validate_json``): integers stay exact whatever their
    size (so a refusal can show them), numbers over 4300 digits and nesting beyond 200 levels
    are refused, NaN and Infinity are not JSON.
    """
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidInputError(["body"], raw, f"invalid JSON: {exc}") from None
