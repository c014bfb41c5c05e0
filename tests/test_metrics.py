"""GET /metrics: Prometheus exposition fed by the pure-ASGI middleware."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.main import create_app


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name{labels}`` in Prometheus text (0 if absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)\{(.*)\} (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if found == labels:
            return float(match.group(3))
    return 0.0


def test_metrics_count_requests_by_route_template_and_status() -> None:
    client = TestClient(create_app())
    before = client.get("/metrics").text
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/path/42").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    name = "initlab_http_requests_total"
    ok = {"route": "/healthz", "method": "GET", "status": "200"}
    assert _sample(after, name, **ok) - _sample(before, name, **ok) == 3
    missing = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert _sample(after, name, **missing) - _sample(before, name, **missing) == 1
    # Raw paths never become labels (bounded cardinality).
    assert "/no/such/path/42" not in after
    count = "initlab_http_request_duration_seconds_count"
    route = {"route": "/healthz", "method": "GET"}
    assert _sample(after, count, **route) - _sample(before, count, **route) == 3


def test_metrics_served_by_a_real_uvicorn_process(api_server: str) -> None:
    import httpx

    assert httpx.get(f"{api_server}/healthz").status_code == 200
    text = httpx.get(f"{api_server}/metrics").text
    labels = {"route": "/healthz", "method": "GET", "status": "200"}
    assert _sample(text, "initlab_http_requests_total", **labels) >= 1
    assert "process_cpu_seconds_total" in text


def test_head_is_counted_as_head_under_its_route_template() -> None:
    client = TestClient(create_app())
    before = client.get("/metrics").text
    assert client.head("/v1/initializers/he_normal").status_code == 200
    assert client.head("/v1/tensors?shape=2&seed=1").status_code == 200
    after = client.get("/metrics").text
    name = "initlab_http_requests_total"
    for route in ("/v1/initializers/{name}", "/v1/tensors"):
        head = {"route": route, "method": "HEAD", "status": "200"}
        assert _sample(after, name, **head) - _sample(before, name, **head) == 1, route
