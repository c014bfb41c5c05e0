"""``/v1/tensors``: initialized weight tensors as JSON, raw bytes, ``.npy`` or safetensors.

A request is planned first — rank, element and cost limits, initializer resolution and
validation — without allocating anything; then generated and encoded inline when it is cheap,
or in a worker thread (bounded to the CPU count) when it is not, so the event loop stays free.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, get_args
from urllib.parse import parse_qsl

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from app import initializers as engine
from app.api import compression, formats
from app.api.bodies import json_body
from app.api.dispatch import RawRoute
from app.api.routes.initializers import unknown_initializer
from app.config import Settings
from app.errors import InvalidInputError, TooLargeError
from app.schemas.bounds import MAX_DIM, MAX_FAN, SEED_MAX, json_problem
from app.schemas.tensors import Dtype, Layout, TensorRead, TensorRequest

router = APIRouter(prefix="/v1/tensors", tags=["tensors"], route_class=RawRoute)

Where = Literal["body", "query"]

IMMUTABLE = "public, max-age=31536000, immutable"
# Bump when the bytes for the same request may change (engine or encoding changes).
# tensors-3: float32 normals by the compiled ziggurat, chunks of 2**17 elements.
ETAG_VERSION = "tensors-3"
# The non-zero dimensions of an empty tensor multiply to at most this (× 8-byte items, NumPy's
# size arithmetic stays within 63 bits).
MAX_EMPTY_SPAN = 2**59
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


class ResponseCache:
    """Encoded small responses to seeded GETs, keyed by the raw query string and ``Accept``.

    A seeded response is immutable (same request, same bytes), so a repeat can be answered
    without planning or generating again. Only bodies up to ``max_body`` bytes are kept, and
    at most ``max_bytes`` in all (least recently used evicted first).
    """

    ENTRY_OVERHEAD = 1024  # headers and bookkeeping, roughly

    def __init__(self, max_bytes: int = 8 * 2**20, max_body: int = 64 * 2**10) -> None:
        self.max_bytes, self.max_body = max_bytes, max_body
        self.size = 0
        # Values are tuples of bytes only, which the garbage collector stops tracking.
        self._entries: OrderedDict[tuple[bytes, str | None], tuple[bytes, tuple, str]] = (
            OrderedDict()
        )

    def get(self, key: tuple[bytes, str | None]) -> tuple[bytes, tuple, str] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[bytes, str | None], response: Response, etag: str) -> None:
        body = response.body
        streamed = getattr(response, "data", None) is not None  # a large BufferResponse
        if streamed or not isinstance(body, bytes) or len(body) > self.max_body:
            return
        if key in self._entries:
            return
        self._entries[key] = (body, tuple(response.raw_headers), etag)
        self.size += len(body) + len(key[0]) + self.ENTRY_OVERHEAD
        while self.size > self.max_bytes and self._entries:
            (query, _), (old, _, _) = self._entries.popitem(last=False)
            self.size -= len(old) + len(query) + self.ENTRY_OVERHEAD


class TensorContext:
    """What the handlers keep per application (apps built with other settings must not share
    it): the settings and version, the response cache, and the seed-independent part of
    recent plans (:class:`Checked`, keyed by :func:`checked_key`)."""

    CHECKED_MAX = 1024

    def __init__(self, settings: Settings, version: str) -> None:
        self.settings, self.version = settings, version
        self.responses = ResponseCache()
        self.checked: dict[tuple[Any, ...], Checked] = {}


def _context(request: Request) -> TensorContext:
    app = request.app
    context: TensorContext | None = getattr(app.state, "tensor_context", None)
    if context is None:
        context = app.state.tensor_context = TensorContext(app.state.settings, app.version)
    return context


def _cached_response(body: bytes, raw_headers: tuple) -> Response:
    response = Response.__new__(Response)
    response.status_code, response.body, response.background = 200, body, None
    response.raw_headers = list(raw_headers)
    return response


@dataclass(frozen=True, slots=True)
class Resolved:
    """An initializer reference resolved once: the ``Initializer`` (immutable once built) and
    its Keras and TF.js configs with the seed still to fill in. Shared: never mutate."""

    init: engine.Initializer
    keras: dict[str, Any]
    tfjs: dict[str, Any]
    tfjs_unsupported: str | None  # why TF.js 4.22 cannot load ``tfjs`` (None: it can)

    @classmethod
    def of(cls, ref: str | Mapping[str, Any]) -> Resolved:
        init = engine.resolve(ref)
        return cls(init, init.keras_config(0), init.tfjs_config(0), init.tfjs_unsupported())

    def keras_config(self, seed: int) -> dict[str, Any]:
        """``init.keras_config(seed)`` without rebuilding it."""
        return _with_seed(self.keras, seed)

    def tfjs_config(self, seed: int) -> dict[str, Any]:
        """``init.tfjs_config(seed)`` without rebuilding it."""
        return _with_seed(self.tfjs, seed)

    def tfjs_echo(self, seed: int) -> dict[str, Any]:
        """The response's ``tfjs`` (null when TF.js 4.22 cannot load it) and, then only,
        ``tfjs_unsupported`` (the reason)."""
        if self.tfjs_unsupported is not None:
            return {"tfjs": None, "tfjs_unsupported": self.tfjs_unsupported}
        return {"tfjs": _with_seed(self.tfjs, seed)}


def _with_seed(template: dict[str, Any], seed: int) -> dict[str, Any]:
    config = template["config"]
    if "seed" not in config:  # a deterministic scheme: the template is the config
        return template
    return {**template, "config": {**config, "seed": seed}}  # same key order as the engine's


_RESOLVED: OrderedDict[tuple[bool, str], Resolved] = OrderedDict()
RESOLVED_MAX = 1024


def resolve_ref(ref: str | Mapping[str, Any]) -> Resolved:
    """Resolve an initializer reference through a bounded LRU cache keyed on its exact text
    (a name, or the ``repr`` of the parsed object: lossless for JSON values, NaN included).
    Errors are raised each time, never cached."""
    key = (True, ref) if isinstance(ref, str) else (False, repr(ref))
    resolved = _RESOLVED.get(key)
    if resolved is None:
        resolved = _RESOLVED[key] = Resolved.of(ref)
        while len(_RESOLVED) > RESOLVED_MAX:
            _RESOLVED.popitem(last=False)
    else:
        with contextlib.suppress(KeyError):  # evicted meanwhile by another thread
            _RESOLVED.move_to_end(key)
    return resolved


class TensorFields(Protocol):
    """What a request asks for: a validated :class:`TensorRequest`, or :class:`QueryFields`."""

    @property
    def shape(self) -> list[int]: ...
    @property
    def initializer(self) -> str | dict[str, Any]: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def dtype(self) -> str: ...
    @property
    def layout(self) -> str: ...
    @property
    def fan_in(self) -> int | None: ...
    @property
    def fan_out(self) -> int | None: ...
    @property
    def compat(self) -> str | None: ...


class QueryFields(NamedTuple):
    """A GET's fields when ``TensorRequest`` would take them as they are (``_query_request``)."""

    shape: list[int]
    initializer: str
    seed: int | None
    dtype: str = "float32"
    layout: str = "keras"
    fan_in: int | None = None
    fan_out: int | None = None
    compat: str | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """A request checked against the limits and the engine: everything but the seed."""

    resolved: Resolved
    shape: tuple[int, ...]
    work: int
    fan_in: int
    fan_out: int
    # ETag templates by ``stats`` (memo_etag): the ETag, or the canonical text around the seed.
    etags: dict[bool, str | tuple[bytes, bytes]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TensorPlan:
    """A validated request: everything that fixes the bytes, nothing allocated yet."""

    request: TensorFields
    checked: Checked
    init: engine.Initializer
    resolved: Resolved
    keras_config: dict[str, Any]  # seed included
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


def check_tensor(
    req: TensorFields, *, media_type: str, settings: Settings, where: Where = "body"
) -> Checked:
    """Check ``req`` (all but its seed) against the limits and the engine, allocating nothing."""
    shape = req.shape
    if len(shape) > settings.max_rank:
        raise InvalidInputError(
            [where, "shape"],
            shape,
            f"rank {len(shape)} exceeds the maximum rank {settings.max_rank}",
        )
    elements = math.prod(shape)
    if elements == 0 and math.prod(d for d in shape if d) > MAX_EMPTY_SPAN:
        # NumPy refuses to describe such an array even with no elements in it.
        raise InvalidInputError(
            [where, "shape"],
            shape,
            "an empty tensor's non-zero dimensions must multiply to at most "
            f"{MAX_EMPTY_SPAN} (2**59)",
        )
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
        resolved = resolve_ref(req.initializer)
    except engine.InitializerError as exc:
        raise _engine_error(exc, where) from None
    init = resolved.init
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
    if max(fan_in, fan_out) > MAX_FAN:  # possible for empty tensors with huge dimensions
        raise InvalidInputError(
            [where, "shape"],
            shape,
            f"the fans it implies ({fan_in}, {fan_out}) are over {MAX_FAN} (2**62); "
            "give fan_in / fan_out explicitly or use smaller dimensions",
        )
    return Checked(resolved, tuple(shape), work, fan_in, fan_out)


def checked_key(req: TensorFields, media_type: str) -> tuple[Any, ...] | None:
    """What :func:`check_tensor`'s result depends on (with the settings), or None when a value
    is not of the exact type validation gives it (never ``True`` for ``1``)."""
    shape, ref, fan_in, fan_out = req.shape, req.initializer, req.fan_in, req.fan_out
    if any(type(d) is not int for d in shape) or not (
        (fan_in is None or type(fan_in) is int) and (fan_out is None or type(fan_out) is int)
    ):
        return None
    initializer = (True, ref) if isinstance(ref, str) else (False, repr(ref))
    layout = (req.dtype, req.layout, fan_in, fan_out, req.compat)
    return (media_type, tuple(shape), initializer, *layout)


def plan_tensor(
    req: TensorFields,
    *,
    media_type: str,
    stats: bool,
    settings: Settings,
    where: Where = "body",
    memo: dict[tuple[Any, ...], Checked] | None = None,
) -> TensorPlan:
    """Validate ``req`` against the limits and the engine without allocating the tensor.

    ``memo`` (the application's, for the same ``settings``) keeps :func:`check_tensor`'s
    results: a request that differs from a recent one only by its seed is not checked again.
    Errors are raised each time, never kept."""
    key = checked_key(req, media_type) if memo is not None else None
    checked = memo.get(key) if memo is not None and key is not None else None
    if checked is None:
        checked = check_tensor(req, media_type=media_type, settings=settings, where=where)
        if memo is not None and key is not None:
            if len(memo) >= TensorContext.CHECKED_MAX:
                memo.clear()
            memo[key] = checked
    resolved = checked.resolved
    init = resolved.init
    seeded = req.seed is not None or init.seed is not None
    seed = req.seed if req.seed is not None else init.seed
    if seed is None:
        seed = secrets.randbelow(SEED_MAX + 1)
    return TensorPlan(
        request=req,
        checked=checked,
        init=init,
        resolved=resolved,
        keras_config=resolved.keras_config(seed),
        shape=checked.shape,
        work=checked.work,
        seed=seed,
        seeded=seeded,
        fan_in=checked.fan_in,
        fan_out=checked.fan_out,
        media_type=media_type,
        stats=stats,
    )


def tensor_etag(plan: TensorPlan, version: str) -> str:
    """A strong ETag: the hash of the canonical request and the encoding."""
    return _etag(_etag_text(plan, plan.keras_config, version))


def _etag(canonical: bytes) -> str:
    return f'"{hashlib.blake2b(canonical, digest_size=16).hexdigest()}"'


def _etag_text(plan: TensorPlan, keras_config: dict[str, Any], version: str) -> bytes:
    req = plan.request
    canonical = {
        "v": [ETAG_VERSION, version],
        "shape": plan.shape,
        "initializer": keras_config,
        "dtype": req.dtype,
        "layout": req.layout,
        "fan_in": req.fan_in,
        "fan_out": req.fan_out,
        "compat": req.compat,
        "media_type": plan.media_type,
        "stats": plan.stats and plan.media_type == formats.JSON,
    }
    return orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)


# Stands for the seed in an ETag template: no seed, dimension, fan or parameter (64-bit
# signed) is this integer, and a template is used only if its digits occur exactly once.
_SEED_MARK = 2**64 - 1
_SEED_MARK_TEXT = str(_SEED_MARK).encode()


def memo_etag(plan: TensorPlan, version: str) -> str:
    """``tensor_etag(plan, version)`` from a template kept with the plan's :class:`Checked`
    (the canonical text around the seed), so a new seed costs one hash."""
    template = plan.checked.etags.get(plan.stats)
    if template is None:
        if "seed" not in plan.resolved.keras["config"]:  # deterministic: the seed is not in it
            template = tensor_etag(plan, version)
        else:
            text = _etag_text(plan, plan.resolved.keras_config(_SEED_MARK), version)
            parts = text.split(_SEED_MARK_TEXT)
            if len(parts) != 2:
                return tensor_etag(plan, version)
            template = (parts[0], parts[1])
        plan.checked.etags[plan.stats] = template
    if isinstance(template, str):
        return template
    head, tail = template
    return _etag(head + str(plan.seed).encode() + tail)


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
    keras_config = plan.keras_config
    media = plan.media_type
    if media == formats.JSON:  # the body carries everything the X-* headers would
        meta: dict[str, Any] = {
            "shape": plan.shape,
            "dtype": req.dtype,
            "seed": plan.seed,
            "initializer": keras_config,
            **plan.resolved.tfjs_echo(plan.seed),
            "layout": req.layout,
            "compat": req.compat,
            "fan_in": plan.fan_in,
            "fan_out": plan.fan_out,
        }
        if plan.stats:
            expected = plan.init.expected_std(plan.fan_in, plan.fan_out)
            meta["stats"] = formats.tensor_stats(arr, expected)
        return _json_response(formats.encode_json(meta, arr), headers)
    headers = {
        **headers,
        "X-Tensor-Shape": ",".join(str(d) for d in plan.shape),
        "X-Tensor-Dtype": req.dtype,
        "X-Seed": str(plan.seed),
        "X-Initializer": _ascii_json(keras_config),
        "X-Fan-In": str(plan.fan_in),
        "X-Fan-Out": str(plan.fan_out),
    }
    if media == formats.OCTET_STREAM:
        return formats.BufferResponse(b"", formats.raw_view(arr), media_type=media, headers=headers)
    if media == formats.NPY:
        head, suffix = formats.npy_header(arr), "npy"
    else:
        metadata = {
            "initializer": headers["X-Initializer"],
            "seed": headers["X-Seed"],
            "dtype": req.dtype,
            "layout": req.layout,
            "fan_in": headers["X-Fan-In"],
            "fan_out": headers["X-Fan-Out"],
        }
        head, suffix = formats.safetensors_header(arr, req.dtype, metadata), "safetensors"
    headers["Content-Disposition"] = f'attachment; filename="{_file_stem(plan)}.{suffix}"'
    return formats.BufferResponse(head, formats.raw_view(arr), media_type=media, headers=headers)


async def respond(plan: TensorPlan, settings: Settings, headers: dict[str, str]) -> Response:
    """Render inline when cheap; otherwise in a worker thread, off the event loop."""
    if plan.work <= settings.threadpool_threshold_elements:
        return render_tensor(plan, headers)
    return await anyio.to_thread.run_sync(render_tensor, plan, headers, limiter=_limiter())


def _query_param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


_STR = {"type": "string"}
_FORMAT_PARAM = _query_param(
    "format",
    {"type": "string", "enum": list(formats.FORMATS)},
    "Overrides `Accept`: json, binary (application/octet-stream), npy, safetensors.",
)
_STATS_PARAM = _query_param(
    "stats", {"type": "boolean", "default": False}, "Add `stats` (JSON only)."
)
_COMPRESS_PARAM = _query_param(
    compression.COMPRESS_PARAM,
    {"type": "string", "enum": list(compression.COMPRESS_VALUES), "default": "auto"},
    "auto: JSON is gzipped (level 1) when `Accept-Encoding` allows gzip; binary formats are "
    "not (random floats barely compress). gzip: binary formats too, when `Accept-Encoding` "
    "allows it.",
)
_GET_PARAMS = [
    _query_param("shape", _STR, "Comma-separated dimensions.", required=True, example="784,256"),
    _query_param(
        "initializer",
        {"type": "string", "default": "glorot_uniform"},
        "A name in any framework's spelling, or a JSON object reference "
        '(e.g. `{"class_name":"VarianceScaling","config":{"scale":2}}`).',
    ),
    _query_param(
        "seed",
        {"type": "integer", "minimum": 0, "maximum": SEED_MAX},
        "With a seed (here or inside the initializer) the response is immutable and has an "
        "ETag; without one the server draws a seed and returns it.",
    ),
    _query_param(
        "dtype", {"type": "string", "enum": list(get_args(Dtype)), "default": "float32"}, "dtype"
    ),
    _query_param(
        "layout",
        {"type": "string", "enum": list(get_args(Layout)), "default": "keras"},
        "Kernel layout that defines the fans: keras `(..., in, out)`, torch `(out, in, ...)`.",
    ),
    _query_param(
        "fan_in", {"type": "integer", "minimum": 1, "maximum": MAX_FAN}, "Explicit fan-in."
    ),
    _query_param(
        "fan_out", {"type": "integer", "minimum": 1, "maximum": MAX_FAN}, "Explicit fan-out."
    ),
    _query_param(
        "compat", {"type": "string", "enum": ["keras"]}, "keras: bit-identical to Keras 3."
    ),
    _FORMAT_PARAM,
    _STATS_PARAM,
    _COMPRESS_PARAM,
]
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
    413: {"description": "Over the element, cost or body-size limit (problem+json)."},
    415: {"description": "A body that is not JSON (POST; problem+json)."},
    422: {"description": "Invalid input (problem+json) naming the field and value."},
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_JSON_TYPE = formats.JSON.encode()
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _query(query_string: bytes) -> dict[str, str]:
    """The query string as a dict, the last value of a repeated name winning (as Starlette's
    ``request.query_params.get``); percent-escapes and ``+`` decoded as ``parse_qsl`` does."""
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    out = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            out[name] = value
    return out


def _headers(scope: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(``Accept``, ``If-None-Match``) from the raw headers, in one pass."""
    accept = if_none_match = None
    for key, value in scope["headers"]:
        if key == b"accept":
            accept = value.decode("latin-1")
        elif key == b"if-none-match":
            if_none_match = value.decode("latin-1")
    return accept, if_none_match


def _json_response(body: bytes, headers: dict[str, str]) -> Response:
    """A JSON response with its raw headers built directly (what ``Response()`` would send)."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append((b"content-type", _JSON_TYPE))
    return _cached_response(body, tuple(raw))


def _output_options(query: Mapping[str, str], accept: str | None) -> tuple[str, bool, bool]:
    """``?format=`` / ``Accept`` and ``?stats=`` → (media type, stats, chosen by Accept)."""
    fmt = query.get("format", "").strip()
    if fmt and fmt not in formats.FORMATS:
        raise InvalidInputError(
            ["query", "format"], fmt, f"must be one of {', '.join(formats.FORMATS)}"
        )
    stats = query.get("stats", "").strip().lower()
    if stats not in _TRUE and stats not in _FALSE:
        raise InvalidInputError(["query", "stats"], stats, "must be true or false")
    compress = query.get(compression.COMPRESS_PARAM, "").strip().lower()
    if compress and compress not in compression.COMPRESS_VALUES:
        raise InvalidInputError(
            ["query", compression.COMPRESS_PARAM],
            compress,
            f"must be one of {', '.join(compression.COMPRESS_VALUES)}",
        )
    media = formats.FORMATS[fmt] if fmt else formats.negotiate(accept)
    return media, stats in _TRUE, not fmt


def _validation_error(exc: ValidationError, where: Where) -> RequestValidationError:
    return RequestValidationError(
        [{**e, "loc": (where, *e["loc"])} for e in exc.errors(include_url=False)]
    )


# The handlers read the request themselves rather than through FastAPI's parameter
# machinery: for a 3×3 tensor that machinery cost more than generating the tensor.
# The OpenAPI document still describes every parameter (openapi_extra).


@router.post(
    "",
    response_model=TensorRead,
    responses=_RESPONSES,
    openapi_extra={
        "parameters": [_FORMAT_PARAM, _STATS_PARAM, _COMPRESS_PARAM],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TensorRequest.model_json_schema()}},
        },
    },
)
async def create_tensor(request: Request) -> Response:
    """Generate an initialized tensor."""
    context = _context(request)
    settings = context.settings
    accept, _ = _headers(request.scope)
    media, stats, by_accept = _output_options(_query(request.scope["query_string"]), accept)
    raw = await json_body(request)
    try:
        body = TensorRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise _validation_error(exc, "body") from None
    plan = plan_tensor(body, media_type=media, stats=stats, settings=settings, memo=context.checked)
    return await respond(plan, settings, {"Vary": "Accept"} if by_accept else {})


# Longer digit strings are out of every range anyway; refusing them early keeps int() cheap.
_MAX_INT_DIGITS = 24


def _ascii_int(text: str) -> int | None:
    """``text`` as an integer if it is an optional ``-`` and 1-24 ASCII digits, else None.

    ``int()`` alone would also take ``1_000``, ``+5``, surrounding whitespace and non-ASCII
    digits (``١٢``); a query value is plain decimal."""
    digits = text[1:] if text.startswith("-") else text
    if not (0 < len(digits) <= _MAX_INT_DIGITS and digits.isascii() and digits.isdigit()):
        return None
    return int(text)


def _query_int(name: str, value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    number = _ascii_int(value.strip())
    if number is None:
        raise InvalidInputError(
            ["query", name], value, f"must be an integer (at most {_MAX_INT_DIGITS} digits)"
        )
    return number


def _query_shape(value: str) -> list[int]:
    text = value.strip().strip("[]()").strip()
    if not text:
        return []
    dims = []
    for part in text.split(","):
        dim = _ascii_int(part.strip())
        if dim is None:
            raise InvalidInputError(
                ["query", "shape"],
                value,
                f"dimension {part.strip()[:40]!r} is not an integer "
                "(use comma-separated integers, e.g. shape=784,256)",
            )
        dims.append(dim)
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
    problem = json_problem(parsed)
    if problem is not None:
        raise InvalidInputError(["query", "initializer"], value, problem)
    return parsed


_DTYPES = frozenset(get_args(Dtype))
_LAYOUTS = frozenset(get_args(Layout))


def _query_request(query: Mapping[str, str]) -> TensorFields:
    """A GET's fields, validated as ``TensorRequest`` validates them (422 naming ``query.*``).

    The usual query (a scheme name, in-range integers, known dtype and layout) is taken as it
    is: ``TensorRequest`` would accept it unchanged, so it runs only for the rest."""
    shape = query.get("shape")
    if shape is None:
        raise InvalidInputError(["query", "shape"], None, "required, e.g. shape=784,256")
    fields: dict[str, Any] = {
        "shape": _query_shape(shape),
        "initializer": _query_initializer(query.get("initializer") or "glorot_uniform"),
        "seed": _query_int("seed", query.get("seed")),
        "fan_in": _query_int("fan_in", query.get("fan_in")),
        "fan_out": _query_int("fan_out", query.get("fan_out")),
    }
    for name in ("dtype", "layout", "compat"):
        value = query.get(name, "").strip()
        if value:
            fields[name] = value
    seed, fan_in, fan_out = fields["seed"], fields["fan_in"], fields["fan_out"]
    if (
        isinstance(fields["initializer"], str)
        and all(0 <= d <= MAX_DIM for d in fields["shape"])
        and (seed is None or 0 <= seed <= SEED_MAX)
        and (fan_in is None or 1 <= fan_in <= MAX_FAN)
        and (fan_out is None or 1 <= fan_out <= MAX_FAN)
        and fields.get("dtype", "float32") in _DTYPES
        and fields.get("layout", "keras") in _LAYOUTS
        and fields.get("compat", "keras") == "keras"
    ):
        return QueryFields(**fields)
    try:
        return TensorRequest.model_validate(fields)
    except ValidationError as exc:
        raise _validation_error(exc, "query") from None


@router.get(
    "",
    response_model=TensorRead,
    responses={**_RESPONSES, 304: {"description": "Not modified (If-None-Match)."}},
    openapi_extra={"parameters": _GET_PARAMS},
)
async def read_tensor(request: Request) -> Response:
    """The same as POST, for browsers and caches; with a seed the response is immutable."""
    context = _context(request)
    settings = context.settings
    accept, if_none_match = _headers(request.scope)
    cache_key = (request.scope["query_string"], accept)
    cache = context.responses
    hit = cache.get(cache_key)
    if hit is not None:
        body, raw_headers, etag = hit
        if if_none_match and _etag_matches(if_none_match, etag):
            not_modified = _cached_response(b"", raw_headers)
            not_modified.status_code = 304
            not_modified.raw_headers = [
                (k, v) for k, v in raw_headers if k not in (b"content-length", b"content-type")
            ]
            return not_modified
        return _cached_response(body, raw_headers)
    query = _query(request.scope["query_string"])
    media, stats, by_accept = _output_options(query, accept)
    req = _query_request(query)
    plan = plan_tensor(
        req, media_type=media, stats=stats, settings=settings, where="query", memo=context.checked
    )
    headers: dict[str, str] = {"Vary": "Accept"} if by_accept else {}
    if not plan.seeded:
        headers["Cache-Control"] = "no-store"
        return await respond(plan, settings, headers)
    etag = headers["ETag"] = memo_etag(plan, context.version)
    headers["Cache-Control"] = IMMUTABLE
    if if_none_match and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    response = await respond(plan, settings, headers)
    cache.put(cache_key, response, etag)
    return response
