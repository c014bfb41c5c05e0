"""The dashboard: static files (``app/dashboard/static``) served at ``/`` and ``/dashboard/…``.

The page talks to the public ``/v1`` API only, from the browser; nothing here reads Redis.
The files are read once per process; each answers with a strong ``ETag`` (a SHA-256 of its
bytes) and ``Cache-Control: no-cache``, so a browser revalidates (``If-None-Match`` → 304)
and a new release is picked up on the next load. Public, like ``/docs``: the API key is
entered in the page and sent by it to the ``/v1`` endpoints that need one.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response

from app.api.formats import etag_matches
from app.errors import NotFoundError

STATIC_DIR = Path(__file__).resolve().parents[2] / "dashboard" / "static"
CACHE = "no-cache"
# Scripts, styles and connections to this origin only: a value shown on the page can never
# run as code. Inline style attributes are for uPlot's own layout.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@functools.cache
def assets() -> dict[str, Asset]:
    """Every file under the static folder by its relative path (read once per process)."""
    out: dict[str, Asset] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file():
            continue
        body = path.read_bytes()
        media_type = _TYPES.get(path.suffix) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        out[path.relative_to(STATIC_DIR).as_posix()] = Asset(body, media_type, etag)
    return out


def _serve(name: str, if_none_match: str | None) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise NotFoundError(f"No dashboard file {name!r}.")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": CACHE,
        "X-Content-Type-Options": "nosniff",
    }
    if asset.media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CSP
    if if_none_match is not None and etag_matches(if_none_match, asset.etag):
        # The media type lets the compression middleware give the 304 the 200's Vary / ETag.
        return Response(status_code=304, headers=headers, media_type=asset.media_type)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


IfNoneMatch = Annotated[str | None, Header()]


@router.get("/", response_class=Response)
def read_dashboard(if_none_match: IfNoneMatch = None) -> Response:
    """The dashboard page."""
    return _serve("index.html", if_none_match)


@router.get("/dashboard/{asset:path}", response_class=Response)
def read_dashboard_asset(asset: str, if_none_match: IfNoneMatch = None) -> Response:
    """A script, style sheet or vendored library of the dashboard."""
    return _serve(asset, if_none_match)
