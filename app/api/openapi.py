"""The OpenAPI document, with every error response as what it is: ``application/problem+json``.

FastAPI documents its 422 as ``application/json`` with its own ``HTTPValidationError`` shape,
and knows nothing of the errors the service renders itself (``app.api.errors``). Here every
4xx/5xx response of every operation is a :data:`PROBLEM_SCHEMA`, and every operation also
lists the statuses any request may get (over the request bounds, rate limited) and a
``default`` problem for the rest (405, 406, 503, ...). Without ``INITLAB_API_KEYS`` no
operation declares a security requirement (none is enforced).

A route that reads its JSON body itself (to apply a preset, or to report its own errors)
declares the body with :func:`json_request_body`: the body's pydantic model is published as
its JSON Schema, with every model it uses under ``components/schemas``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.api.errors import PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "The offending fields: where (`loc`), what is wrong, the value.",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "input": {},
                },
            },
        },
    },
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
# Any operation may answer these, whatever its parameters.
COMMON_ERRORS: dict[str, dict[str, Any]] = {
    "414": {"description": "Query string over INITLAB_MAX_QUERY_BYTES."},
    "429": {"description": "Rate limited (INITLAB_RATE_LIMIT_*).", "headers": RETRY_AFTER},
    "431": {"description": "Request headers over INITLAB_MAX_HEADER_BYTES."},
    "default": {"description": "Any other error."},
}
_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


# An operation's own component schemas (json_request_body), moved to components/schemas.
COMPONENTS_KEY = "x-initlab-components"
_REF = "#/components/schemas/{model}"


def json_request_body(
    model: type[BaseModel],
    *,
    description: str,
    alternatives: Sequence[Mapping[str, Any]] = (),
    examples: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` of an operation whose route parses its JSON body itself: the body is
    ``model``'s JSON Schema (or one of ``alternatives``); ``examples`` are named values."""
    schema = model.model_json_schema(ref_template=_REF)
    components: dict[str, Any] = schema.pop("$defs", {})
    components[model.__name__] = schema
    body: dict[str, Any] = {"$ref": _REF.format(model=model.__name__)}
    if alternatives:
        body = {"anyOf": [body, *alternatives]}
    content: dict[str, Any] = {"schema": body}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": content},
        },
        COMPONENTS_KEY: components,
    }


def _is_error(status: str) -> bool:
    return status == "default" or status[:1] in ("4", "5")


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """``app``'s OpenAPI document with problem+json errors (cached on the app, as FastAPI's)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    keys_on = bool(app.state.settings.api_keys)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            for name, schema in operation.pop(COMPONENTS_KEY, {}).items():
                if schemas.setdefault(name, schema) != schema:
                    raise ValueError(f"two different schemas are named {name!r}")
            if not keys_on:  # authentication is off: no operation asks for a key
                operation.pop("security", None)
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, extra in COMMON_ERRORS.items():
                responses.setdefault(status, dict(extra))
            if "503" in responses:
                responses["503"].setdefault("headers", RETRY_AFTER)
            for status, response in responses.items():
                if _is_error(status):
                    response.setdefault("description", "Error")
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    if not keys_on:
        doc.get("components", {}).pop("securitySchemes", None)
    for name in _FASTAPI_ERROR_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    app.openapi_schema = doc
    return doc
