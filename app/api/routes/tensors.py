"""``/v1/tensors``: initialized weight tensors as JSON, raw bytes, ``.npy`` or safetensors.

A request is read (:mod:`app.api.tensor_request`), planned against the application's limits
and the engine without allocating anything (:mod:`app.api.tensor_plan`), then generated and
encoded (:mod:`app.api.tensor_response`).

The handlers read the request themselves rather than through FastAPI's parameter machinery
(:class:`~app.api.dispatch.RawRoute`; for a 3×3 tensor that machinery cost more than
generating the tensor); the OpenAPI document still describes every parameter.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api import formats
from app.api.bodies import json_body
from app.api.dispatch import RawRoute
from app.api.formats import etag_matches
from app.api.tensor_plan import TensorContext, plan_tensor
from app.api.tensor_request import (
    GET_PARAMS,
    GET_QUERY,
    POST_PARAMS,
    POST_QUERY,
    body_request,
    output_options,
    query_request,
    read_headers,
    read_query,
)
from app.api.tensor_response import IMMUTABLE, respond, tensor_etag
from app.schemas.tensors import TensorRead, TensorRequest

router = APIRouter(prefix="/v1/tensors", tags=["tensors"], route_class=RawRoute)

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The tensor, in the format chosen by `Accept` or `?format=`.",
        "content": {m: _BINARY for m in formats.MEDIA_TYPES if m != formats.JSON},
    },
    404: {"description": "Unknown initializer (problem+json)."},
    406: {"description": "No acceptable format (problem+json)."},
    413: {"description": "Over the element, cost or body-size limit (problem+json)."},
    415: {"description": "A body that is not JSON (POST; problem+json)."},
    422: {"description": "Invalid input (problem+json) naming the field and value."},
}


def _context(request: Request) -> TensorContext:
    """The application's :class:`TensorContext`, made on its first tensor request."""
    app = request.app
    context: TensorContext | None = getattr(app.state, "tensor_context", None)
    if context is None:
        context = app.state.tensor_context = TensorContext(app.state.settings, app.version)
    return context


@router.post(
    "",
    response_model=TensorRead,
    responses=_RESPONSES,
    openapi_extra={
        "parameters": POST_PARAMS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TensorRequest.model_json_schema()}},
        },
    },
)
async def create_tensor(request: Request) -> Response:
    """Generate an initialized tensor."""
    context = _context(request)
    accept, _ = read_headers(request.scope)
    media, stats, by_accept = output_options(read_query(request.scope, POST_QUERY), accept)
    req = body_request(await json_body(request))
    plan = plan_tensor(
        req, media_type=media, stats=stats, settings=context.settings, memo=context.checked
    )
    return await respond(plan, context.settings, {"Vary": "Accept"} if by_accept else {})


@router.get(
    "",
    response_model=TensorRead,
    responses={**_RESPONSES, 304: {"description": "Not modified (If-None-Match)."}},
    openapi_extra={"parameters": GET_PARAMS},
)
async def read_tensor(request: Request) -> Response:
    """The same as POST, for browsers and caches; with a seed the response is immutable."""
    context = _context(request)
    query = read_query(request.scope, GET_QUERY)
    accept, if_none_match = read_headers(request.scope)
    media, stats, by_accept = output_options(query, accept)
    plan = plan_tensor(
        query_request(query),
        media_type=media,
        stats=stats,
        settings=context.settings,
        where="query",
        memo=context.checked,
    )
    headers: dict[str, str] = {"Vary": "Accept"} if by_accept else {}
    if not plan.seeded:
        headers["Cache-Control"] = "no-store"
        return await respond(plan, context.settings, headers)
    etag = headers["ETag"] = tensor_etag(plan, context.version)
    headers["Cache-Control"] = IMMUTABLE
    if if_none_match and etag_matches(if_none_match, etag):
        # The media type lets the compression middleware give the 304 the 200's Vary / ETag.
        return Response(status_code=304, headers=headers, media_type=plan.media_type)
    return await respond(plan, context.settings, headers)
