"""The dashboard's files over HTTP (a real uvicorn): ``/`` is the page with a strict CSP,
every asset its media type and a strong ETag (304 on ``If-None-Match``), the vendored uPlot
with its version and licence, and an unknown file a problem+json 404."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.api.routes.dashboard import STATIC_DIR, assets

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def test_root_is_the_dashboard_page_with_a_strict_csp(api_server: str) -> None:
    res = httpx.get(f"{api_server}/", timeout=10)
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/html; charset=utf-8"
    csp = res.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "https:" not in csp  # offline: nothing from another origin
    assert '<script type="module" src="/dashboard/js/main.js">' in res.text
    assert res.headers["cache-control"] == "no-cache"


def test_every_file_the_page_links_is_served_with_its_type_and_etag(api_server: str) -> None:
    identity = {"Accept-Encoding": "identity"}
    with httpx.Client(base_url=api_server, timeout=10, headers=identity) as client:
        page = client.get("/").text
        linked = re.findall(r'(?:href|src)="(/dashboard/[^"]+)"', page)
        assert len(linked) >= 4, linked
        # Every module import inside the scripts resolves to a served file too.
        for path in sorted(STATIC_DIR.glob("js/*.js")):
            for imported in re.findall(r'from "(\./[^"]+|\.\./[^"]+)"', path.read_text()):
                target = (path.parent / imported).resolve().relative_to(STATIC_DIR)
                linked.append(f"/dashboard/{target.as_posix()}")
        for url in set(linked):
            res = client.get(url)
            assert res.status_code == 200, url
            kind = res.headers["content-type"]
            if url.endswith(".js"):
                assert kind == "text/javascript; charset=utf-8", url
            elif url.endswith(".css"):
                assert kind == "text/css; charset=utf-8", url
            etag = res.headers["etag"]
            assert re.fullmatch(r'"[0-9a-f]{32}"', etag), url
            again = client.get(url, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b"", url
            assert again.headers["etag"] == etag
        # Scripts and styles are gzipped like JSON when the browser asks (a weak ETag then).
        res = client.get("/dashboard/vendor/uPlot.esm.js", headers={"Accept-Encoding": "gzip"})
        assert res.headers["content-encoding"] == "gzip"
        assert int(res.headers["content-length"]) < 60_000 < len(res.content)
        assert res.headers["etag"].startswith('W/"')


def test_an_unknown_file_is_a_problem_404(api_server: str) -> None:
    for path in ("/dashboard/nope.js", "/dashboard/../app/main.py", "/dashboard/js/../../x"):
        res = httpx.get(f"{api_server}{path}", timeout=10)
        assert res.status_code == 404, path
        assert res.headers["content-type"].startswith(PROBLEM)


def test_the_vendored_uplot_matches_its_pin_and_licence() -> None:
    root = Path(__file__).resolve().parents[2]
    pin = (root / "scripts/dashboard-vendor/package.json").read_text()
    version = re.search(r'"uplot": "([0-9.]+)"', pin)
    assert version is not None
    vendored = STATIC_DIR / "vendor"
    assert (vendored / "VERSION").read_text().startswith(f"uPlot {version.group(1)} (MIT")
    assert "MIT License" in (vendored / "uPlot.LICENSE").read_text()
    assert "export { uPlot as default }" in (vendored / "uPlot.esm.js").read_text()
    # Nothing the page loads names another origin (offline, no CDN).
    for name, asset in assets().items():
        if name.endswith((".js", ".css", ".html")) and not name.startswith("vendor/"):
            assert not re.search(rb"https?://(?!127\.0\.0\.1)", asset.body), name
