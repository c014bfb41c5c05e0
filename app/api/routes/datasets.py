"""Datasets: the built-in ones and ``.npz`` uploads that jobs reference by id.

Built-in datasets are visible to every caller; an upload belongs to its caller (``CallerDep``)
and is a 404 for anyone else.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.responses import JSONResponse, Response

from app.api.bodies import UnsupportedMediaTypeError
from app.api.deps import CallerDep, DatasetStoreDep, SettingsDep
from app.config import Settings
from app.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RequestTimeoutError,
    ServiceUnavailableError,
    TooLargeError,
)
from app.training.datasets import (
    UPLOAD,
    DatasetError,
    DatasetTooLargeError,
    describe_npz,
    list_datasets,
    task_fits,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

# Room for the multipart envelope (boundaries, part headers, small extra fields) on top of
# the file itself when checking Content-Length.
MULTIPART_OVERHEAD = 16 * 1024
# The route-level body limit (static, above any upload limit a setting can give).
UPLOAD_BODY_LIMIT = sys.maxsize
RAW_TYPES = frozenset({b"application/octet-stream", b"application/x-npz", b"application/zip"})
# How long an upload waits for one of the INITLAB_MAX_CONCURRENT_UPLOADS slots before a 503.
SLOT_WAIT_SECONDS = 10.0
_NAME = re.compile(r"[\w .,()+-]{1,100}")


def _too_large(limit: int, got: str) -> TooLargeError:
    return TooLargeError(
        f"The upload is over the limit of {limit} bytes ({got}); send a smaller .npz "
        "(np.savez_compressed, float16/uint8 features, fewer rows) or raise "
        "INITLAB_MAX_UPLOAD_BYTES."
    )


class _FilePart:
    """Streaming multipart consumer: keeps only the ``file`` part, bounded by ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.filename: str | None = None
        self.found = False
        self.fields: list[str] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.fields.append(name)
        self._in_file = name == "file" and not self.found
        if self._in_file:
            self.found = True
            filename = options.get(b"filename")
            self.filename = filename.decode("utf-8", "replace") if filename else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            if len(self.data) + (end - start) > self.limit:
                raise _too_large(self.limit, "the 'file' part is larger")
            self.data += data[start:end]

    def on_part_end(self) -> None:
        self._in_file = False


async def _bounded(
    stream: AsyncIterator[bytes], limit: int, settings: Settings
) -> AsyncIterator[bytes]:
    """The request body chunks, refusing (413) as soon as more than ``limit`` bytes arrived,
    and (408) when the body is late: each chunk must come by ``upload_body_seconds`` plus
    ``received / upload_min_bytes_per_second`` from the start of the read."""
    received = 0
    chunks = aiter(stream)
    start = anyio.current_time()
    while True:
        deadline = start + settings.upload_body_seconds
        deadline += received / settings.upload_min_bytes_per_second
        try:
            with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _late(received, anyio.current_time() - start, settings) from None
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, f"more than {limit} bytes received")
        yield chunk


def _late(received: int, seconds: float, settings: Settings) -> RequestTimeoutError:
    rate = settings.upload_min_bytes_per_second
    msg = (
        f"{received} bytes arrived in {seconds:.1f} s: the body must arrive within "
        f"{settings.upload_body_seconds:g} s plus 1 s per {rate} bytes "
        "(INITLAB_UPLOAD_BODY_SECONDS, INITLAB_UPLOAD_MIN_BYTES_PER_SECOND)"
    )
    return RequestTimeoutError(
        f"The upload's body is too slow; {msg}. Send it again on a faster connection.",
        errors=[{"loc": ["body"], "msg": msg, "input": f"<{received} bytes>"}],
    )


async def _read_upload(request: Request, settings: Settings) -> tuple[bytes, str | None]:
    """The ``.npz`` bytes and file name of a multipart (field ``file``) or raw upload."""
    content_type = request.headers.get("content-type", "")
    ctype, options = parse_options_header(content_type)
    multipart = ctype == b"multipart/form-data"
    if not multipart and ctype not in RAW_TYPES:
        raise UnsupportedMediaTypeError(
            f"Content-Type {content_type!r} is not accepted: send the .npz as multipart/form-data "
            "in the field 'file', or as the raw body with Content-Type application/octet-stream."
        )
    limit = settings.max_upload_bytes
    body_limit = limit + (MULTIPART_OVERHEAD if multipart else 0)
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidInputError(["header", "content-length"], length, "must be an integer")
        if int(length) > body_limit:
            raise _too_large(limit, f"Content-Length is {length}")
    body = _bounded(request.stream(), body_limit, settings)
    if not multipart:
        data = bytearray()
        async for chunk in body:
            data += chunk
        return bytes(data), None
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidInputError(
            ["header", "content-type"], content_type, "multipart/form-data needs a boundary"
        )
    part = _FilePart(limit)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": part.on_part_begin,
            "on_header_field": part.on_header_field,
            "on_header_value": part.on_header_value,
            "on_header_end": part.on_header_end,
            "on_headers_finished": part.on_headers_finished,
            "on_part_data": part.on_part_data,
            "on_part_end": part.on_part_end,
        },
    )
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidInputError(["body"], None, f"malformed multipart body: {exc}") from None
    if not part.found:
        raise InvalidInputError(
            ["body", "file"],
            part.fields,
            "missing: send the .npz in the multipart field 'file'",
        )
    return bytes(part.data), part.filename


def _announced_size(request: Request) -> int:
    """About how many bytes of file the request's Content-Length announces (0 if none), for
    the early quota check before the body is read."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        return 0
    ctype, _ = parse_options_header(request.headers.get("content-type", ""))
    envelope = MULTIPART_OVERHEAD if ctype == b"multipart/form-data" else 0
    return max(0, int(length) - envelope)


def _display_name(name: str | None, filename: str | None) -> str:
    if name is not None:
        if not _NAME.fullmatch(name):
            raise InvalidInputError(
                ["query", "name"], name, "1-100 letters, digits, spaces or . , ( ) + - _"
            )
        return name
    if filename:
        stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].removesuffix(".npz")
        cleaned = re.sub(r"[^\w .,()+-]", "_", stem)[:100]
        if cleaned:
            return cleaned
    return UPLOAD


def _describe(data: bytes, name: str, task: str | None, settings: Settings) -> dict[str, Any]:
    """Validate the upload and summarize it, a chunk at a time (CPU-bound: runs in a worker
    thread)."""
    limits = {"max_bytes": settings.max_upload_bytes, "max_elements": settings.max_dataset_elements}
    try:
        summary = describe_npz(data, name, task, **limits)
    except DatasetError as exc:
        loc: list[str | int] = ["body"] if exc.field == "file" else ["body", exc.field]
        if isinstance(exc, DatasetTooLargeError):
            raise TooLargeError(f"{exc.field}: {exc.msg}", loc=loc, value=exc.value) from None
        raise InvalidInputError(loc, exc.value, exc.msg) from None
    return {**summary, "tasks": task_fits(data, name, **limits)}


@contextlib.asynccontextmanager
async def _upload_slot(request: Request, settings: Settings) -> AsyncIterator[None]:
    """One of ``max_concurrent_uploads`` slots of this process (the memory an upload takes is
    bounded by its size; this bounds how many are in memory at once). Waits up to
    ``SLOT_WAIT_SECONDS``, then 503 with ``Retry-After``."""
    slots: anyio.Semaphore | None = getattr(request.app.state, "upload_slots", None)
    if slots is None:
        slots = request.app.state.upload_slots = anyio.Semaphore(settings.max_concurrent_uploads)
    acquired = False
    with anyio.move_on_after(SLOT_WAIT_SECONDS):
        await slots.acquire()
        acquired = True
    if not acquired:
        raise ServiceUnavailableError(
            f"{settings.max_concurrent_uploads} uploads are being processed "
            "(INITLAB_MAX_CONCURRENT_UPLOADS); retry in a moment",
            headers={"Retry-After": "2"},
        )
    try:
        yield
    finally:
        slots.release()


def _upload_entry(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "kind": "upload",
        "available": True,
        "ref": {"name": UPLOAD, "id": meta["id"]},
        "links": {"self": f"/v1/datasets/{meta['id']}"},
    }


@router.post(
    "",
    status_code=201,
    # Lifts the application's JSON body limit: an upload streams against max_upload_bytes
    # (a setting) in _read_upload, 413 as soon as it is over.
    max_body_size=UPLOAD_BODY_LIMIT,
    responses={
        201: {"description": "The upload's id, sizes and expiry; `Location` names it."},
        408: {"description": "The body arrived too slowly (INITLAB_UPLOAD_BODY_SECONDS, ...)."},
        413: {},
        415: {},
        422: {},
        429: {"description": "Over the caller's quota of uploads kept (count or bytes)."},
        503: {"description": "Every upload slot of this process is busy (Retry-After)."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def create_dataset(
    request: Request,
    caller: CallerDep,
    settings: SettingsDep,
    store: DatasetStoreDep,
    name: Annotated[
        str | None,
        Query(description="Display name (default: file name).", pattern=f"^{_NAME.pattern}$"),
    ] = None,
    task: Annotated[
        Literal["multiclass", "binary", "regression"] | None,
        Query(description="Default: integer y_train → multiclass, float → regression."),
    ] = None,
) -> JSONResponse:
    """Upload an `.npz` (`x_train`, `y_train`, optional `x_val`, `y_val`) for jobs to use.

    Multipart (field `file`) or the raw body. No pickles; shapes, dtypes, finiteness and
    labels are checked. Reference it in a job as `{"name": "upload", "id": ...}`.
    """
    if name is not None:  # a bad name is refused before the body is read
        _display_name(name, None)
    await anyio.to_thread.run_sync(store.check_quota, caller, _announced_size(request))
    async with _upload_slot(request, settings):
        data, filename = await _read_upload(request, settings)
        display = _display_name(name, filename)
        summary = await anyio.to_thread.run_sync(_describe, data, display, task, settings)
        meta = {**summary, "filename": filename}
        dataset_id = await anyio.to_thread.run_sync(
            functools.partial(store.put, owner=caller), data, meta
        )
    stored = await anyio.to_thread.run_sync(store.meta, dataset_id)
    entry = _upload_entry(stored or {**meta, "id": dataset_id})
    return JSONResponse(entry, status_code=201, headers={"Location": f"/v1/datasets/{dataset_id}"})


def _builtins(settings: Settings) -> list[dict[str, Any]]:
    return [
        {**entry, "ref": {"name": entry["name"]}}
        for entry in list_datasets(settings.data_dir, settings.allow_downloads)
    ]


@router.get("")
def list_all_datasets(
    caller: CallerDep, settings: SettingsDep, store: DatasetStoreDep
) -> dict[str, Any]:
    """Built-in datasets (sizes, availability, parameters) and the caller's live uploads,
    newest first."""
    uploads = [_upload_entry(meta) for meta in store.list(owner=caller)]
    return {"datasets": [*_builtins(settings), *uploads]}


def _no_dataset(dataset_id: str) -> NotFoundError:
    # Another caller's upload reads exactly like an unknown one: ids do not leak.
    return NotFoundError(f"No dataset {dataset_id!r} (not built in; unknown or expired upload).")


def _builtin(settings: Settings, dataset_id: str) -> dict[str, Any] | None:
    return next((e for e in _builtins(settings) if e["name"] == dataset_id.lower()), None)


@router.get("/{dataset_id}")
def read_dataset(
    dataset_id: str, caller: CallerDep, settings: SettingsDep, store: DatasetStoreDep
) -> dict[str, Any]:
    """One dataset: a built-in one by name, or one of the caller's uploads by id."""
    entry = _builtin(settings, dataset_id)
    if entry is not None:
        return entry
    meta = store.meta(dataset_id, owner=caller) if len(dataset_id) <= 128 else None
    if meta is None:
        raise _no_dataset(dataset_id)
    return _upload_entry(meta)


@router.delete("/{dataset_id}", status_code=204, response_class=Response)
def delete_dataset(
    dataset_id: str, caller: CallerDep, settings: SettingsDep, store: DatasetStoreDep
) -> Response:
    """Delete one of the caller's uploads (jobs already queued on it then fail to load it)."""
    if _builtin(settings, dataset_id) is not None:
        raise ConflictError(f"{dataset_id!r} is a built-in dataset; only uploads can be deleted.")
    if len(dataset_id) > 128 or not store.delete(dataset_id, owner=caller):
        raise _no_dataset(dataset_id)
    return Response(status_code=204)
