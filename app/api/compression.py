"""gzip for the responses it pays off on, when the client accepts it.

Policy (the service's, documented in docs/api.md and the README):

- JSON and text (``application/json``, ``application/problem+json``, ``text/plain``,
  ``text/html``, ``text/csv``, ``image/svg+xml``, and the dashboard's ``text/javascript`` and
  ``text/css``) are compressed at **level 1** when the
  request's ``Accept-Encoding`` allows gzip and the body is at least ``minimum_size`` bytes.
  Level 1 keeps most of the gain at a fraction of the cost (1000×1000 float32 JSON, 12 MB:
  ratio 0.44 at level 1 vs 0.38 at level 9, about 14× faster; bench/results/http.md).
- Binary tensors (octet-stream, ``.npy``, safetensors) are random floats that barely compress
  (ratio 0.93 at any level, 4 MB in ~150 ms vs 14 ms plain), so they go out as they are unless
  the request also says ``?compress=gzip`` (worth it for zeros, ones, identity, sparse...).
- Anything else (images, event streams, metrics) is never touched, nor are responses that
  already carry a ``Content-Encoding``, or bodiless statuses. A ``HEAD`` arrives here as its
  ``GET`` (``app.api.head``), so it gets the GET's headers, compressed length included.

Every response of a compressible type says ``Vary: Accept-Encoding``. A compressed response's
strong ``ETag`` becomes weak (``W/"..."``): its bytes differ from the identity encoding's, but
the content is the same, and ``If-None-Match`` compares weakly. Bodies sent in several messages
(large tensors) are compressed as one stream, sent chunked.

A ``304`` gets the ``Vary`` and the ``ETag`` form the ``200`` to the same request would carry
(RFC 9110 §15.4.5): ``Vary: Accept-Encoding`` when the representation is of a compressible
type, and the weak ``ETag`` when the request accepts gzip and the client's matched
``If-None-Match`` tag is the weak one (it holds the compressed representation; a strong match
means it holds the identity one, e.g. a body under ``minimum_size``). The route names the
representation's type in the 304's ``Content-Type``, which is removed here (a 304 carries no
representation metadata); every route with a 304 does (tensors, dashboard, model files, job
outputs), and a 304 without one is passed through as it is.

A pure ASGI middleware: no task or thread per request; a request that is not compressed costs
one header scan.
"""

from __future__ import annotations

import zlib
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import formats

COMPRESSIBLE: frozenset[str] = frozenset(
    {
        "application/json",
        "application/problem+json",
        "text/plain",
        "text/html",
        "text/csv",
        "image/svg+xml",
        "text/javascript",  # the dashboard's scripts and style sheet
        "text/css",
    }
)
OPT_IN: frozenset[str] = frozenset({formats.OCTET_STREAM, formats.NPY, formats.SAFETENSORS})
COMPRESS_PARAM = "compress"
COMPRESS_VALUES = ("auto", "gzip")  # ?compress=gzip: binary tensors too
LEVEL = 1
MINIMUM_SIZE = 1024
THREAD_ABOVE = 256 * 1024  # chunks compressed in a worker thread (zlib releases the GIL)
_NO_BODY = frozenset({204, 304})


def accepts_gzip(accept_encoding: str) -> bool:
    """True if ``Accept-Encoding`` allows gzip (explicitly or through ``*``, with q > 0)."""
    star = False
    for coding, q in formats.weighted_items(accept_encoding):
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return star


def opted_in(query_string: bytes) -> bool:
    """``?compress=gzip`` in the raw query string."""
    if b"compress" not in query_string:
        return False
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return dict(pairs).get(COMPRESS_PARAM, "").strip().lower() == "gzip"


def matched_weak(if_none_match: bytes, etag: bytes) -> bool:
    """Whether the first tag of ``If-None-Match`` that matches the strong ``etag`` weakly is
    its weak form ``W/"..."`` (False for a strong match, ``*`` or no match)."""
    for tag in if_none_match.split(b","):
        tag = tag.strip()
        if tag == etag:
            return False
        if tag == b"W/" + etag:
            return True
    return False


def _media_type(headers: list[tuple[bytes, bytes]]) -> tuple[str, bool]:
    """(media type without parameters, whether a Content-Encoding is already set)."""
    media, encoded = "", False
    for key, value in headers:
        if key == b"content-type":
            media = value.split(b";", 1)[0].strip().lower().decode("latin-1")
        elif key == b"content-encoding":
            encoded = True
    return media, encoded


class CompressionMiddleware:
    """Applies the policy in the module docstring."""

    def __init__(self, app: ASGIApp, minimum_size: int = MINIMUM_SIZE, level: int = LEVEL) -> None:
        self.app, self.minimum_size, self.level = app, minimum_size, level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gzip_ok, if_none_match = False, b""
        for key, value in scope["headers"]:
            if key == b"accept-encoding":
                gzip_ok = accepts_gzip(value.decode("latin-1"))
            elif key == b"if-none-match":
                if_none_match = value
        responder = _Responder(send, scope, gzip_ok, if_none_match, self.minimum_size, self.level)
        await self.app(scope, receive, responder.send)


class _Responder:
    """Per-response state: pass through, or hold the start message and compress the body."""

    __slots__ = (
        "_send",
        "compressor",
        "gzip_ok",
        "if_none_match",
        "level",
        "minimum_size",
        "scope",
        "start",
    )

    def __init__(
        self,
        send: Send,
        scope: Scope,
        gzip_ok: bool,
        if_none_match: bytes,
        minimum_size: int,
        level: int,
    ) -> None:
        self._send, self.scope, self.gzip_ok = send, scope, gzip_ok
        self.if_none_match, self.minimum_size, self.level = if_none_match, minimum_size, level
        self.start: Message | None = None
        self.compressor: zlib._Compress | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._on_start(message)
        elif kind == "http.response.body" and self.start is not None:
            await self._on_first_body(message)
        elif kind == "http.response.body" and self.compressor is not None:
            await self._on_more_body(message)
        else:
            await self._send(message)

    def _eligible(self, media: str) -> bool:
        return media in COMPRESSIBLE or (media in OPT_IN and opted_in(self.scope["query_string"]))

    async def _on_start(self, message: Message) -> None:
        headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
        if message["status"] == 304:
            await self._send({**message, "headers": self._not_modified(headers)})
            return
        media, encoded = _media_type(headers)
        eligible = not encoded and self._eligible(media)
        if not eligible or message["status"] in _NO_BODY:
            await self._send(message)
            return
        _add_vary(headers)
        message = {**message, "headers": headers}
        if not self.gzip_ok:
            await self._send(message)
            return
        self.start = message  # decided on the first body chunk (its size)

    def _not_modified(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """A 304's headers: the 200's ``Vary`` and ``ETag`` form (module docstring)."""
        media, _ = _media_type(headers)
        kept = [(k, v) for k, v in headers if k != b"content-type"]
        if not (media and self._eligible(media)):
            return kept
        _add_vary(kept)
        etag = next((v for k, v in kept if k == b"etag"), None)
        weak = etag is not None and matched_weak(self.if_none_match, etag)
        if weak and self.gzip_ok and etag is not None and etag.startswith(b'"'):
            kept = [(k, b"W/" + v if k == b"etag" else v) for k, v in kept]
        return kept

    async def _on_first_body(self, message: Message) -> None:
        start, self.start = self.start, None
        assert start is not None
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if not more and len(body) < self.minimum_size:
            await self._send(start)
            await self._send(message)
            return
        self.compressor = zlib.compressobj(self.level, zlib.DEFLATED, 31)  # 31: gzip framing
        data = await _compress(self.compressor, body, final=not more)
        headers = [
            (k, b"W/" + v if k == b"etag" and v.startswith(b'"') else v)
            for k, v in start["headers"]
            if k != b"content-length"
        ]
        headers.append((b"content-encoding", b"gzip"))
        if not more:
            headers.append((b"content-length", str(len(data)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def _on_more_body(self, message: Message) -> None:
        compressor = self.compressor
        assert compressor is not None
        more = message.get("more_body", False)
        data = await _compress(compressor, message.get("body", b""), final=not more)
        if not more:
            self.compressor = None
        await self._send({"type": "http.response.body", "body": data, "more_body": more})


def _compress_sync(compressor: zlib._Compress, data: bytes | memoryview, final: bool) -> bytes:
    out = compressor.compress(data)
    return out + compressor.flush() if final else out


async def _compress(compressor: zlib._Compress, data: bytes | memoryview, *, final: bool) -> bytes:
    """Compress a chunk; large ones off the event loop, so other requests keep being served."""
    if len(data) < THREAD_ABOVE:
        return _compress_sync(compressor, data, final)
    return await anyio.to_thread.run_sync(_compress_sync, compressor, data, final)


def _add_vary(headers: list[tuple[bytes, bytes]]) -> None:
    for i, (key, value) in enumerate(headers):
        if key == b"vary":
            if b"accept-encoding" not in value.lower():
                headers[i] = (key, value + b", Accept-Encoding")
            return
    headers.append((b"vary", b"Accept-Encoding"))
