"""How model files are served: small files as one body, larger ones streamed weight by weight
(the same bytes either way), plans and small bodies kept per application (bounded, without
outliving the Redis record), and the API's memory while streaming a 96 MiB weights.bin (about
its largest weight)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.routes import models as routes
from app.jobs.keys import model_key
from app.models import Limits, plan_model, weight_values
from tests.api.test_uploads_processes import MiB, growth_bytes

SMALL = {
    "input_shape": [20],
    "seed": 3,
    "layers": [
        {"type": "dense", "units": 16, "activation": "relu"},
        {"type": "dense", "units": 8},
    ],
}
# 1100·1000 + 1000 + 1000·3 + 3 parameters: 4.4 MB, over INLINE_MAX_BYTES.
OVER_INLINE = {
    "input_shape": [1100],
    "seed": 4,
    "layers": [{"type": "dense", "units": 1000}, {"type": "dense", "units": 3}],
}
# bench/bench_models.py's BIG: 25,174,016 parameters, three 32 MiB kernels.
BIG = {
    "input_shape": [4096],
    "seed": 1,
    "layers": [
        {"type": "dense", "units": 2048},
        {"type": "dense", "units": 4096},
        {"type": "dense", "units": 2048},
    ],
}


def expected_bytes(spec: dict[str, Any]) -> bytes:
    plan = plan_model(spec, Limits(10**9, 256, 2**24, 2**40, 8))
    return b"".join(weight_values(w).tobytes() for w in plan.weights)


def files(client: TestClient, spec: dict[str, Any]) -> dict[str, httpx.Response]:
    model = client.post("/v1/models", json=spec).json()
    out = {}
    for name in ("weights_bin", "safetensors", "npz", "model_json"):
        resp = client.get(model["links"][name])
        assert resp.status_code == 200, resp.text
        out[name] = resp
    return out


def test_the_inline_limit_sits_between_the_two_models() -> None:
    assert 4 * 20 * 16 < routes.INLINE_MAX_BYTES < len(expected_bytes(OVER_INLINE))


@pytest.mark.parametrize("spec", [SMALL, OVER_INLINE], ids=["small", "over-inline"])
def test_inline_and_streamed_files_are_the_same_bytes(
    client: TestClient, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    served = files(client, spec)
    assert served["weights_bin"].content == expected_bytes(spec)
    again = files(client, spec)  # the small files from the per-app memo
    for name, resp in served.items():
        assert again[name].content == resp.content, name
        assert again[name].headers["etag"] == resp.headers["etag"]
    client.app.state.model_memo.bodies.clear()  # type: ignore[attr-defined]
    # The other way round: everything streamed (limit 0), or everything in one body.
    monkeypatch.setattr(routes, "INLINE_MAX_BYTES", 0 if spec is SMALL else 1 << 30)
    other = files(client, spec)
    for name, resp in served.items():
        assert other[name].content == resp.content, name
        assert other[name].headers["etag"] == resp.headers["etag"]
        assert other[name].headers["content-length"] == resp.headers["content-length"]
        if "content-encoding" not in resp.headers:  # model.json is gzipped for the client
            assert int(resp.headers["content-length"]) == len(resp.content)


def test_a_kept_plan_does_not_outlive_the_redis_record(
    client: TestClient, redis_client: Any
) -> None:
    model = client.post("/v1/models", json=SMALL).json()
    assert client.get(model["links"]["model_json"]).status_code == 200
    assert model["id"] in client.app.state.model_memo.plans  # type: ignore[attr-defined]
    redis_client.delete(model_key(model["id"]))
    for link in ("self", "model_json", "weights_bin"):
        resp = client.get(model["links"][link])
        assert resp.status_code == 404, link
        assert resp.headers["content-type"] == "application/problem+json"


def test_kept_plans_are_bounded(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "PLANS_MAX", 2)
    specs = [{**SMALL, "seed": seed} for seed in (11, 12, 13)]
    for spec in specs:
        model = client.post("/v1/models", json=spec).json()
        assert client.get(model["links"]["weights_bin"]).content == expected_bytes(spec)
        assert len(client.app.state.model_memo.plans) <= 2  # type: ignore[attr-defined]


def test_kept_bodies_are_bounded(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    size = len(expected_bytes(SMALL))
    monkeypatch.setattr(routes, "BODIES_MAX_BYTES", 2 * size)
    memo = None
    for seed in (21, 22, 23, 21):
        spec = {**SMALL, "seed": seed}
        model = client.post("/v1/models", json=spec).json()
        assert client.get(model["links"]["weights_bin"]).content == expected_bytes(spec)
        memo = client.app.state.model_memo  # type: ignore[attr-defined]
        assert memo.body_bytes == sum(map(len, memo.bodies.values())) <= 2 * size
    assert memo is not None and len(memo.bodies) == 2  # the third emptied it; 23 and 21 kept


@pytest.mark.integration
def test_streaming_96_mib_grows_the_api_by_about_its_largest_weight(
    start_api: Callable[..., Any],
) -> None:
    api = start_api()
    model = httpx.post(f"{api.url}/v1/models", json=BIG, timeout=60).json()
    url = api.url + model["links"]["weights_bin"]

    def fetch() -> tuple[int, bytes]:
        size, head = 0, b""
        with httpx.stream("GET", url, timeout=120) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_raw():
                size += len(chunk)
                head = (head + chunk[:4096])[:4096]
        return size, head

    fetch()  # warm-up: the first request loads code and the generator's pool
    (size, head), grew = growth_bytes(api.pid, fetch)
    assert size == model["bytes"] == 4 * 25_174_016
    first = weight_values(plan_model(BIG, Limits(10**9, 256, 2**24, 2**40, 8)).weights[0])
    assert head == first.tobytes()[:4096]
    largest = 4096 * 2048 * 4  # 32 MiB; the model is 96 MiB
    assert grew < 1.5 * largest, f"grew {grew / MiB:.0f} MiB"
