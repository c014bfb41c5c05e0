"""``/v1/tensors``: initialized weight tensors as JSON, raw bytes, ``.npy`` or safetensors.

A request is planned first — rank, element and cost limits, initializer resolution and
validation — without allocating anything; then generated and encoded inline when it is cheap,
or in a worker thread (bounded to the CPU count) when it is not, so the event loop stays free.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np
import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from app import initializers as engine
from app.api import formats
from app.api.deps import SettingsDep
from app.api.routes.initializers import unknown_initializer
from app.config import Settings
from app.errors import InvalidInputError, TooLargeError
from app.schemas.tensors import SEED_MAX, TensorFormat, TensorRead, TensorRequest

router = APIRouter(prefix="/v1/tensors", tags=["tensors"])

Where = Literal["body", "query"]

IMMUTABLE = "public, max-age=31536000, immutable"
# Bump when the bytes for the same request may change (engine or encoding changes).
ETAG_VERSION = "tensors-1"
# Engine error fields that are request fields rather than initializer parameters.
_REQUEST_FIELDS = frozenset({"shape", "dtype", "layout", "fan_in", "fan_out", "compat", "seed"})

_generation_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "initlab_generation_limiter"
)


def _limiter() -> anyio.CapacityLimiter:
    """Large generations in flight at once: one per core, so memory stays bounded."""
    try:
        return _generation_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))
        _generation_limiter.set(limiter)
        return limiter


@dataclass(frozen=True, slots=True)
class TensorPlan:
    """A validated request: everything that fixes the bytes, nothing allocated yet."""

    request: TensorRequest
    init: engine.Initializer
    shape: tuple[int, ...]
    work: int
    seed: int
    seeded: bool  # the client chose the seed (top level or inside the initializer)
    fan_in: int
    fan_out: int
    media_type: str
    stats: bool


def _engine_error(exc: engine.InitializerError, where: Where) -> Exception:
    """An engine error as the domain error the API renders (404 unknown name, else 422)."""
    if isinstance(exc, engine.UnknownInitializerError):
        return unknown_initializer(exc, [where, "initializer"])
    parts = [p for p in str(exc.field).split(".") if p]
    loc: list[str | int]
    if parts and parts[0] in _REQUEST_FIELDS:
        loc = [where, *parts]
    else:
        loc = [where, "initializer", *parts]
    return InvalidInputError(loc, exc.value, exc.msg)


def _too_large(detail: str, where: Where, shape: list[int], msg: str) -> TooLargeError:
    return TooLargeError(detail, errors=[{"loc": [where, "shape"], "msg": msg, "input": shape}])


def plan_tensor(
    req: TensorRequest,
    *,
    media_type: str,
    stats: bool,
    settings: Settings,
    where: Where = "body",
) -> TensorPlan:
    """Validate ``req`` against the limits and the engine without allocating the tensor."""
    shape = req.shape
    if len(shape) > settings.max_rank:
        raise InvalidInputError(
            [where, "shape"],
            shape,
            f"rank {len(shape)} exceeds the maximum rank {settings.max_rank}",
        )
    elements = math.prod(shape)
    if media_type == formats.JSON:
        limit, setting = settings.max_elements_json, "INITLAB_MAX_ELEMENTS_JSON"
        advice = (
            f"Request a binary format (?format=binary, npy or safetensors; limit "
            f"{settings.max_elements_binary:,} elements) or a smaller shape."
        )
    else:
        limit, setting = settings.max_elements_binary, "INITLAB_MAX_ELEMENTS_BINARY"
        advice = "Request a smaller shape (e.g. fewer rows per tensor)."
    if elements > limit:
        raise _too_large(
            f"shape {shape} has {elements:,} elements; the limit for {media_type} is "
            f"{limit:,} ({setting}). {advice}",
            where,
            shape,
            f"{elements:,} elements is over the limit of {limit:,}",
        )
    try:
        init = engine.resolve(req.initializer)
    except engine.InitializerError as exc:
        raise _engine_error(exc, where) from None
    seeded = req.seed is not None or init.seed is not None
    seed = req.seed if req.seed is not None else init.seed
    if seed is None:
        seed = secrets.randbelow(SEED_MAX + 1)
    try:
        init.check(
            shape,
            dtype=req.dtype,
            layout=req.layout,
            fan_in=req.fan_in,
            fan_out=req.fan_out,
            compat=req.compat,
        )
        work = init.work(shape)
        if work > settings.max_orthogonal_work:
            raise _too_large(
                f"{init.name} on shape {shape} costs {work:,} element-operations (it grows as "
                f"rows·cols·min(rows, cols)); the limit is {settings.max_orthogonal_work:,} "
                "(INITLAB_MAX_ORTHOGONAL_WORK). Request a smaller shape.",
                where,
                shape,
                f"cost {work:,} is over the limit of {settings.max_orthogonal_work:,}",
            )
        fan_in, fan_out = engine.compute_fans(shape, req.layout, req.fan_in, req.fan_out)
    except engine.InitializerError as exc:
        raise _engine_error(exc, where) from None
    return TensorPlan(
        request=req,
        init=init,
        shape=tuple(shape),
        work=work,
        seed=seed,
        seeded=seeded,
        fan_in=fan_in,
        fan_out=fan_out,
        media_type=media_type,
        stats=stats,
    )


def tensor_etag(plan: TensorPlan, version: str) -> str:
    """A strong ETag: the hash of the canonical request and the encoding."""
    req = plan.request
    canonical = {
        "v": [ETAG_VERSION, version],
        "shape": plan.shape,
        "initializer": plan.init.keras_config(plan.seed),
        "dtype": req.dtype,
        "layout": req.layout,
        "fan_in": req.fan_in,
        "fan_out": req.fan_out,
        "compat": req.compat,
        "media_type": plan.media_type,
        "stats": plan.stats and plan.media_type == formats.JSON,
    }
    digest = hashlib.blake2b(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return f'"{digest.hexdigest()}"'


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110 §13.1.2)."""
    value = if_none_match.strip()
    if value == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in value.split(","))


def _ascii_json(value: Any) -> str:
    text = orjson.dumps(value).decode()
    if not text.isascii():  # header values are latin-1: escape anything else
        import json

        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


def _file_stem(plan: TensorPlan) -> str:
    dims = "x".join(str(d) for d in plan.shape) or "scalar"
    return f"{plan.init.name}_{dims}_{plan.request.dtype}_seed{plan.seed}"


def array_for(plan: TensorPlan) -> np.ndarray:
    """The tensor a plan describes (in-process; used by benchmarks and tests)."""
    req = plan.request
    return engine.generate(
        plan.init,
        plan.shape,
        seed=plan.seed,
        dtype=req.dtype,
        layout=req.layout,
        fan_in=req.fan_in,
        fan_out=req.fan_out,
        compat=req.compat,
    )


def render_tensor(plan: TensorPlan, headers: dict[str, str]) -> Response:
    """Generate and encode the tensor (blocking: call inline only when cheap)."""
    req = plan.request
    arr = array_for(plan)
    keras_config = plan.init.keras_config(plan.seed)
    headers = {
        **headers,
        "X-Tensor-Shape": ",".join(str(d) for d in plan.shape),
        "X-Tensor-Dtype": req.dtype,
        "X-Seed": str(plan.seed),
        "X-Initializer": _ascii_json(keras_config),
        "X-Fan-In": str(plan.fan_in),
        "X-Fan-Out": str(plan.fan_out),
    }
    media = plan.media_type
    if media == formats.JSON:
        meta: dict[str, Any] = {
            "shape": plan.shape,
            "dtype": req.dtype,
            "seed": plan.seed,
            "initializer": keras_config,
            "tfjs": plan.init.tfjs_config(plan.seed),
            "layout": req.layout,
            "compat": req.compat,
            "fan_in": plan.fan_in,
            "fan_out": plan.fan_out,
        }
        if plan.stats:
            expected = plan.init.expected_std(plan.fan_in, plan.fan_out)
            meta["stats"] = formats.tensor_stats(arr, expected)
        return Response(formats.encode_json(meta, arr), media_type=media, headers=headers)
    if media == formats.OCTET_STREAM:
        return Response(formats.raw_view(arr), media_type=media, headers=headers)
    if media == formats.NPY:
        header, suffix = formats.npy_header(arr), "npy"
    else:
        metadata = {
            "initializer": headers["X-Initializer"],
            "seed": headers["X-Seed"],
            "dtype": req.dtype,
            "layout": req.layout,
            "fan_in": headers["X-Fan-In"],
            "fan_out": headers["X-Fan-Out"],
        }
        header, suffix = formats.safetensors_header(arr, req.dtype, metadata), "safetensors"
    headers["Content-Disposition"] = f'attachment; filename="{_file_stem(plan)}.{suffix}"'
    return formats.BufferResponse(
        [header, formats.raw_view(arr)], media_type=media, headers=headers
    )


async def respond(plan: TensorPlan, settings: Settings, headers: dict[str, str]) -> Response:
    """Render inline when cheap; otherwise in a worker thread, off the event loop."""
    if plan.work <= settings.threadpool_threshold_elements:
        return render_tensor(plan, headers)
    return await anyio.to_thread.run_sync(render_tensor, plan, headers, limiter=_limiter())


def _media_type(format: str | None, accept: str | None) -> str:
    return formats.FORMATS[format] if format else formats.negotiate(accept)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The tensor, in the format chosen by `Accept` or `?format=`.",
        "content": {
            formats.OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}},
            formats.NPY: {"schema": {"type": "string", "format": "binary"}},
            formats.SAFETENSORS: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    404: {"description": "Unknown initializer (problem+json)."},
    406: {"description": "No acceptable format (problem+json)."},
    413: {"description": "Over the element or cost limit (problem+json)."},
    422: {"description": "Invalid input (problem+json) naming the field and value."},
}

FormatQuery = Annotated[
    TensorFormat | None,
    Query(description="Overrides `Accept`: json, binary (octet-stream), npy, safetensors."),
]
StatsQuery = Annotated[bool, Query(description="Add `stats` (JSON only).")]


@router.post("", response_model=TensorRead, responses=_RESPONSES)
async def create_tensor(
    body: TensorRequest,
    settings: SettingsDep,
    format: FormatQuery = None,
    stats: StatsQuery = False,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Generate an initialized tensor."""
    plan = plan_tensor(body, media_type=_media_type(format, accept), stats=stats, settings=settings)
    headers = {} if format else {"Vary": "Accept"}
    return await respond(plan, settings, headers)


def _query_int(name: str, value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidInputError(["query", name], value, "must be an integer") from None


def _query_shape(value: str) -> list[int]:
    text = value.strip().strip("[]()").strip()
    if not text:
        return []
    dims = []
    for part in text.split(","):
        try:
            dims.append(int(part.strip()))
        except ValueError:
            raise InvalidInputError(
                ["query", "shape"],
                value,
                f"dimension {part.strip()!r} is not an integer "
                "(use comma-separated integers, e.g. shape=784,256)",
            ) from None
    return dims


def _query_initializer(value: str) -> str | dict[str, Any]:
    if not value.lstrip().startswith("{"):
        return value.strip()
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(["query", "initializer"], value, f"invalid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidInputError(["query", "initializer"], value, "must be a JSON object")
    return parsed


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@router.get(
    "", response_model=TensorRead, responses={**_RESPONSES, 304: {"description": "Not modified."}}
)
async def read_tensor(
    request: Request,
    settings: SettingsDep,
    shape: Annotated[str, Query(description="Comma-separated dimensions.", examples=["784,256"])],
    initializer: Annotated[
        str, Query(description="A name in any spelling, or a JSON object reference.")
    ] = "glorot_uniform",
    seed: Annotated[
        str | None, Query(description="0..2**32-1; with it the response is immutable.")
    ] = None,
    dtype: Annotated[
        str | None, Query(description="float32 (default), float64, float16, bfloat16, int32.")
    ] = None,
    layout: Annotated[str | None, Query(description="keras (default) or torch.")] = None,
    fan_in: Annotated[str | None, Query(description="Explicit fan-in.")] = None,
    fan_out: Annotated[str | None, Query(description="Explicit fan-out.")] = None,
    compat: Annotated[str | None, Query(description="keras: bit-identical to Keras 3.")] = None,
    format: Annotated[
        str | None, Query(description="json, binary, npy or safetensors (overrides Accept).")
    ] = None,
    stats: Annotated[str | None, Query(description="true: add stats (JSON only).")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    if_none_match: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The same as POST, for browsers and caches; with a seed the response is immutable."""
    fmt = (format or "").strip() or None
    if fmt is not None and fmt not in formats.FORMATS:
        raise InvalidInputError(
            ["query", "format"], format, f"must be one of {', '.join(formats.FORMATS)}"
        )
    stats_text = (stats or "").strip().lower()
    if stats_text not in _TRUE | _FALSE:
        raise InvalidInputError(["query", "stats"], stats, "must be true or false")
    fields: dict[str, Any] = {
        "shape": _query_shape(shape),
        "initializer": _query_initializer(initializer),
        "seed": _query_int("seed", seed),
        "fan_in": _query_int("fan_in", fan_in),
        "fan_out": _query_int("fan_out", fan_out),
    }
    for name, value in (("dtype", dtype), ("layout", layout), ("compat", compat)):
        if value is not None and value.strip():
            fields[name] = value.strip()
    try:
        req = TensorRequest.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    plan = plan_tensor(
        req,
        media_type=_media_type(fmt, accept),
        stats=stats_text in _TRUE,
        settings=settings,
        where="query",
    )
    headers: dict[str, str] = {} if fmt else {"Vary": "Accept"}
    if not plan.seeded:
        headers["Cache-Control"] = "no-store"
        return await respond(plan, settings, headers)
    headers["ETag"] = tensor_etag(plan, request.app.version)
    headers["Cache-Control"] = IMMUTABLE
    if if_none_match and _etag_matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return await respond(plan, settings, headers)
