"""What a ``/v1/tensors`` request asks for, read from HTTP: the output options (``?format=`` or
``Accept``, ``?stats=``, ``?compress=``), the GET query as a :class:`TensorRequest`, and the
OpenAPI description of those query parameters.

Every bound and choice is stated once, in :class:`TensorRequest` (and ``formats.FORMATS`` for
the encodings): the GET query is validated by that model, and its OpenAPI parameters are
derived from the model's JSON schema.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api import compression, formats
from app.api.tensor_plan import Where
from app.errors import InvalidInputError
from app.schemas.bounds import json_problem
from app.schemas.tensors import TensorRequest


def _format_names() -> dict[str, str]:
    """``?format=`` value → media type, from ``formats.FORMATS`` (also the ``Accept`` table):
    each format's short name (``binary``), its media type (``application/octet-stream``), and
    the media type's subtype with and without an ``x-`` / ``vnd.`` prefix (``octet-stream``,
    ``x-npy``, ``npy``, ``vnd.safetensors``, ``safetensors``). Compared case-insensitively."""
    names: dict[str, str] = {}
    for short, media in formats.FORMATS.items():
        subtype = media.partition("/")[2]
        bare = subtype.removeprefix("x-").removeprefix("vnd.")
        for name in (short, media, subtype, bare):
            names.setdefault(name, media)
    return names


FORMAT_NAMES: dict[str, str] = _format_names()


# Reading the query string and the two headers straight from the ASGI scope costs a quarter of
# what Starlette's ``request.query_params`` and ``request.headers`` do (about 4 µs of a 3×3
# request's 100: docs/performance.md).


# Names a URL gets outside its client's control, ignored rather than refused: cache-busters
# (`_=1712345678`, jQuery and axios) and the trackers of a shared link (`utm_source`, click ids).
ADDED_PREFIXES = ("_", "utm_")
ADDED_NAMES = frozenset({"fbclid", "gclid", "msclkid"})


def read_query(scope: Mapping[str, Any], known: Collection[str]) -> dict[str, str]:
    """The query string as a dict, decoded as Starlette's ``request.query_params`` decodes it
    (percent-escapes and ``+`` by ``parse_qsl``). Each name must be one of ``known`` and be
    given once: anything else is a 422 naming ``query.<name>`` (a misspelt ``sed=42`` would
    otherwise be dropped, and the request served unseeded), but for ``ADDED_PREFIXES`` and
    ``ADDED_NAMES``, which are skipped."""
    text = scope["query_string"].decode("latin-1")
    if "%" in text or "+" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
    else:
        split = (pair.partition("=") for pair in text.split("&") if pair)
        pairs = [(name, value) for name, _, value in split]
    out: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith(ADDED_PREFIXES) or name in ADDED_NAMES:
            continue
        if name in out:
            raise InvalidInputError(
                ["query", name], [out[name], value], "given more than once: give it once"
            )
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise InvalidInputError(
                ["query", name],
                value,
                f"unknown query parameter; {hint}this request takes {', '.join(known)}",
            )
        out[name] = value
    return out


def read_headers(scope: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(``Accept``, ``If-None-Match``) from the raw headers, in one pass."""
    accept = if_none_match = None
    for key, value in scope["headers"]:
        if key == b"accept":
            accept = value.decode("latin-1")
        elif key == b"if-none-match":
            if_none_match = value.decode("latin-1")
    return accept, if_none_match


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def output_options(query: Mapping[str, str], accept: str | None) -> tuple[str, bool, bool]:
    """``?format=`` / ``Accept``, ``?stats=`` and ``?compress=`` → (media type, stats, chosen
    by ``Accept``). ``?compress`` is the compression middleware's; it is checked here so that
    a bad value is a 422 before anything is generated."""
    given = query.get("format")
    fmt = None if given is None else given.strip().lower()
    if fmt is not None and fmt not in FORMAT_NAMES:  # format= (empty) included
        raise InvalidInputError(
            ["query", "format"], given, f"must be one of {', '.join(FORMAT_NAMES)}"
        )
    stats = query.get("stats", "").strip().lower()
    if stats not in _TRUE and stats not in _FALSE:
        raise InvalidInputError(["query", "stats"], stats, "must be true or false")
    compress = query.get(compression.COMPRESS_PARAM)
    if compress is not None and compress.strip().lower() not in compression.COMPRESS_VALUES:
        raise InvalidInputError(
            ["query", compression.COMPRESS_PARAM],
            compress,
            f"must be one of {', '.join(compression.COMPRESS_VALUES)}",
        )
    media = FORMAT_NAMES[fmt] if fmt is not None else formats.negotiate(accept)
    return media, stats in _TRUE, fmt is None


def validation_error(exc: ValidationError, where: Where) -> RequestValidationError:
    """Pydantic's errors with their ``loc`` under ``where`` (``body`` or ``query``)."""
    return RequestValidationError(
        [{**e, "loc": (where, *e["loc"])} for e in exc.errors(include_url=False)]
    )


def body_request(raw: bytes) -> TensorRequest:
    """A POST body as a :class:`TensorRequest` (422 naming ``body.*``)."""
    try:
        return TensorRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc, "body") from None


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


# A rank-0 (scalar) tensor is asked for explicitly; an empty ``shape=`` is a mistake.
_SCALAR = frozenset({"[]", "()"})


def _query_shape(value: str) -> list[int]:
    """``784,256`` (or ``[784, 256]``, ``(784, 256)``) → ``[784, 256]``; ``[]`` or ``()`` →
    ``[]`` (a scalar); nothing at all is a 422."""
    text = value.strip()
    if "".join(text.split()) in _SCALAR:
        return []
    text = text.strip("[]()").strip()
    if not text:
        raise InvalidInputError(
            ["query", "shape"],
            value,
            "must list at least one dimension, e.g. shape=784,256 (a scalar is shape=[])",
        )
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


def query_request(query: Mapping[str, str]) -> TensorRequest:
    """A GET's fields as a :class:`TensorRequest` (422 naming ``query.*``). Empty optional
    values (``fan_in=``) count as absent."""
    shape = query.get("shape")
    if shape is None:
        raise InvalidInputError(["query", "shape"], None, "required, e.g. shape=784,256")
    fields: dict[str, Any] = {"shape": _query_shape(shape)}
    initializer = query.get("initializer")
    if initializer:  # else TensorRequest's default
        fields["initializer"] = _query_initializer(initializer)
    for name in ("seed", "fan_in", "fan_out"):
        number = _query_int(name, query.get(name))
        if number is not None:
            fields[name] = number
    for name in ("dtype", "layout", "compat"):
        value = query.get(name, "").strip()
        if value:
            fields[name] = value
    try:
        return TensorRequest.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(exc, "query") from None


# --------------------------------------------------------------------- OpenAPI description


def _param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


def _model_param(name: str, description: str | None = None) -> dict[str, Any]:
    """A query parameter described by :class:`TensorRequest`'s own schema for the field."""
    prop = dict(TensorRequest.model_json_schema()["properties"][name])
    text = description or prop.pop("description", name)
    prop.pop("description", None)
    prop.pop("title", None)
    for option in prop.pop("anyOf", ()):  # an optional field: the non-null branch
        if option.get("type") != "null":
            prop.update(option)
    if prop.get("default", ...) is None:
        del prop["default"]
    return _param(name, prop, text)


FORMAT_PARAM = _param(
    "format",
    {"type": "string", "enum": list(FORMAT_NAMES)},
    "Overrides `Accept`: a format's name (json, binary, npy, safetensors), its media type "
    "(application/octet-stream) or the media type's subtype with or without its x- / vnd. "
    "prefix (octet-stream, x-npy, vnd.safetensors); case-insensitive.",
)
STATS_PARAM = _param("stats", {"type": "boolean", "default": False}, "Add `stats` (JSON only).")
COMPRESS_PARAM = _param(
    compression.COMPRESS_PARAM,
    {"type": "string", "enum": list(compression.COMPRESS_VALUES), "default": "auto"},
    "auto: JSON is gzipped (level 1) when `Accept-Encoding` allows gzip; binary formats are "
    "not (random floats barely compress). gzip: binary formats too, when `Accept-Encoding` "
    "allows it.",
)
POST_PARAMS: list[dict[str, Any]] = [FORMAT_PARAM, STATS_PARAM, COMPRESS_PARAM]
_SHAPE = TensorRequest.model_json_schema()["properties"]["shape"]
GET_PARAMS: list[dict[str, Any]] = [
    _param(
        "shape",
        {"type": "array", "items": _SHAPE["items"], "minItems": 1},
        "Comma-separated dimensions (`784,256`); a scalar is `shape=[]`. " + _SHAPE["description"],
        required=True,
        style="form",
        explode=False,
        example=[784, 256],
    ),
    _param(
        "initializer",
        {"type": "string", "default": TensorRequest.model_fields["initializer"].default},
        "A name in any framework's spelling, or a JSON object reference "
        '(e.g. `{"class_name":"VarianceScaling","config":{"scale":2}}`).',
    ),
    _model_param(
        "seed",
        "With a seed (here or inside the initializer) the response is immutable and has an "
        "ETag; without one the server draws a seed and returns it.",
    ),
    _model_param("dtype"),
    _model_param(
        "layout",
        "Kernel layout that defines the fans: keras `(..., in, out)`, torch `(out, in, ...)`.",
    ),
    _model_param("fan_in"),
    _model_param("fan_out"),
    _model_param("compat"),
    *POST_PARAMS,
]
# The query parameters each method takes: exactly those its OpenAPI operation documents.
POST_QUERY: tuple[str, ...] = tuple(p["name"] for p in POST_PARAMS)
GET_QUERY: tuple[str, ...] = tuple(p["name"] for p in GET_PARAMS)
