"""``/v1/tensors`` answered by ``app.api.dispatch.DirectRoutes`` (not FastAPI's router): the
same responses, errors, headers, CORS, compression, body limits and metrics as through the
router, and the per-app memo of the request path (checks kept on all but the seed) and the
GET query's reading equal to what they stand for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from app import initializers as engine
from app.api import formats, tensor_request
from app.api.dispatch import DirectRoutes
from app.api.routes import DIRECT_ROUTES, health, tensors
from app.api.tensor_plan import TensorContext, plan_tensor
from app.api.tensor_response import IMMUTABLE, tensor_etag
from app.config import Settings
from app.errors import TooLargeError
from app.main import create_app
from app.schemas.tensors import TensorRequest

ORIGIN = "https://app.example"
JSON = {"content-type": "application/json"}
IDENTITY = {"Accept-Encoding": "identity"}
G = "/v1/tensors?shape=3,4&initializer=he_normal&seed=7"
CONSTANT = '/v1/tensors?shape=3&seed=1&initializer={"name":"constant","params":{"value":2}}'

# (method, url, headers, body): every kind of answer the two endpoints give.
REQUESTS: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", G, IDENTITY, None),
    ("GET", G, {}, None),  # default Accept-Encoding (gzip allowed; small: not compressed)
    ("GET", "/v1/tensors?shape=40,40&initializer=he_normal&seed=7", {}, None),  # gzipped
    ("GET", G + "&format=binary&compress=gzip", {}, None),
    ("GET", G + "&format=npy", IDENTITY, None),
    ("GET", G, {"Accept": "application/vnd.safetensors"}, None),
    ("GET", G + "&stats=true&dtype=float64&layout=torch", IDENTITY, None),
    ("GET", G + "&fan_in=5&fan_out=6&compat=keras", IDENTITY, None),
    ("GET", "/v1/tensors?shape=2,2&initializer=zeros&seed=3", IDENTITY, None),  # deterministic
    (
        "GET",
        '/v1/tensors?shape=3&seed=1&initializer={"name":"constant","params":{"value":2}}',
        {},
        None,
    ),
    ("GET", G, {"If-None-Match": '"nope", W/"x"'}, None),
    ("GET", G, {"Origin": ORIGIN}, None),
    ("GET", "/v1/tensors?initializer=he_normal", {}, None),  # 422 shape required
    ("GET", "/v1/tensors?shape=3,x", {}, None),  # 422
    ("GET", "/v1/tensors?shape=3,3&seed=4294967296", {}, None),  # 422 seed range
    ("GET", "/v1/tensors?shape=3,3&seed=1&dtype=float8", {}, None),  # 422 dtype
    ("GET", "/v1/tensors?shape=3,3&seed=1&fan_in=0", {}, None),  # 422 fan
    ("GET", "/v1/tensors?shape=3,3&seed=1&initializer=nope", {}, None),  # 404
    ("GET", "/v1/tensors?shape=100000,100000&seed=1", {}, None),  # 413
    ("GET", G, {"Accept": "image/png"}, None),  # 406
    ("GET", G + "&format=xml", {}, None),  # 422
    ("GET", G + "&format=application/x-npy", IDENTITY, None),  # a media-type name
    ("GET", G + "&format=Octet-Stream", IDENTITY, None),
    ("GET", "/v1/tensors?shape=&seed=1", {}, None),  # 422: empty shape
    ("GET", "/v1/tensors?shape=[]&initializer=ones&seed=1", IDENTITY, None),  # a scalar
    ("POST", "/v1/tensors", {**JSON, **IDENTITY}, b'{"shape":[3,3],"seed":5}'),
    ("POST", "/v1/tensors?format=npy", JSON, b'{"shape":[2],"initializer":"ones","seed":1}'),
    ("POST", "/v1/tensors", {**JSON, "Origin": ORIGIN}, b'{"shape":[3,3],"seed":5}'),
    ("POST", "/v1/tensors", JSON, b'{"shape":[3,3],"seed":-1}'),  # 422
    ("POST", "/v1/tensors", JSON, b'{"shape":[3,3],"seed":1,"extra":1}'),  # 422
    ("POST", "/v1/tensors", JSON, b'{"shape":[3,3],"initializer":"nope","seed":1}'),  # 404
    ("POST", "/v1/tensors", JSON, b'{"shape":'),  # 422
    ("POST", "/v1/tensors", {"content-type": "text/plain"}, b'{"shape":[3]}'),  # 415
    ("POST", "/v1/tensors", JSON, b'{"shape":[3],"pad":"' + b"x" * 5000 + b'"}'),  # 413
    ("PUT", "/v1/tensors", JSON, b"{}"),  # 405
    ("DELETE", "/v1/tensors", {}, None),  # 405
    ("HEAD", G, {}, None),
    ("GET", "/v1/tensors/", {}, None),  # the router's trailing-slash redirect
    (
        "OPTIONS",
        "/v1/tensors",
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        None,
    ),
    ("OPTIONS", "/v1/tensors", {}, None),  # not a preflight: 405
]


@pytest.fixture(scope="module")
def clients() -> Iterator[tuple[TestClient, TestClient]]:
    """(direct, through the router): two apps alike but for DirectRoutes."""
    settings = Settings(max_body_bytes=4096)
    with (
        TestClient(create_app(settings), follow_redirects=False) as direct,
        TestClient(create_app(settings, direct_routes=False), follow_redirects=False) as routed,
    ):
        yield direct, routed


def _send(client: TestClient, method: str, url: str, headers: dict[str, str], body: Any) -> Any:
    return client.request(method, url, headers=headers, content=body)


@pytest.mark.parametrize(("method", "url", "headers", "body"), REQUESTS)
def test_direct_and_routed_answers_are_identical(
    clients: tuple[TestClient, TestClient],
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    direct, routed = clients
    a = _send(direct, method, url, headers, body)
    b = _send(routed, method, url, headers, body)
    assert a.status_code == b.status_code
    assert a.headers.multi_items() == b.headers.multi_items()  # names, values and order
    assert a.content == b.content


def test_unseeded_answers_have_the_same_form(clients: tuple[TestClient, TestClient]) -> None:
    direct, routed = clients
    for method, kwargs in (
        ("GET", {"params": {"shape": "3,3"}}),
        ("POST", {"json": {"shape": [3, 3]}}),
    ):
        a, b = (c.request(method, "/v1/tensors", **kwargs) for c in (direct, routed))
        assert a.status_code == b.status_code == 200
        assert a.headers.keys() == b.headers.keys()
        assert a.headers.get("cache-control") == b.headers.get("cache-control")
        ja, jb = a.json(), b.json()
        assert ja.keys() == jb.keys() and ja["seed"] != jb["seed"]  # drawn per request


def test_revalidation_is_identical(clients: tuple[TestClient, TestClient]) -> None:
    for client in clients:
        url = "/v1/tensors?shape=5,2&initializer=lecun_uniform&seed=11"
        first = client.get(url, headers=IDENTITY)
        gzipped = client.get(url.replace("5,2", "50,20"))
        for etag in (first.headers["etag"], gzipped.headers["etag"]):  # strong, weak
            if etag.startswith("W/"):
                url = url.replace("5,2", "50,20")
            again = client.get(url, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"].removeprefix("W/") == etag.removeprefix("W/")
            assert again.headers["cache-control"] == IMMUTABLE


def test_cors_preflight_and_exposed_headers_on_the_direct_path(
    clients: tuple[TestClient, TestClient],
) -> None:
    direct, _ = clients
    preflight = direct.options(
        "/v1/tensors",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    res = direct.get(G, headers={"Origin": ORIGIN, "Accept": "application/octet-stream"})
    assert res.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip().lower() for h in res.headers["access-control-expose-headers"].split(",")}
    assert {"x-tensor-shape", "x-tensor-dtype", "x-seed", "etag"} <= exposed


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)\{(.*)\} (\S+)", line)
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2))) if match else None
        if match and match.group(1) == name and found == labels:
            return float(match.group(3))
    return 0.0


@pytest.mark.parametrize("direct_routes", [True, False])
def test_metrics_record_the_route_template_method_and_status(direct_routes: bool) -> None:
    client = TestClient(create_app(Settings(), direct_routes=direct_routes))
    before = client.get("/metrics").text
    assert client.get(G.replace("he_normal", "glorot_normal")).status_code == 200
    assert client.post("/v1/tensors", json={"shape": [3], "seed": 1}).status_code == 200
    assert client.get("/v1/tensors?shape=x").status_code == 422
    etag = client.get(G).headers["etag"]
    assert client.get(G, headers={"If-None-Match": etag}).status_code == 304
    after = client.get("/metrics").text
    name = "initlab_http_requests_total"
    for method, status, count in (("GET", "200", 2), ("POST", "200", 1), ("GET", "422", 1)):
        labels = {"route": "/v1/tensors", "method": method, "status": status}
        assert _sample(after, name, **labels) - _sample(before, name, **labels) == count
    labels = {"route": "/v1/tensors", "method": "GET", "status": "304"}
    assert _sample(after, name, **labels) - _sample(before, name, **labels) == 1
    hist = "initlab_http_request_duration_seconds_count"
    labels = {"route": "/v1/tensors", "method": "POST"}
    assert _sample(after, hist, **labels) - _sample(before, hist, **labels) == 1


def _recording(app: FastAPI, seen: list[Any]) -> Any:
    """``app`` as an ASGI app that records the route the request was given to."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)
        if scope["type"] == "http":
            seen.append((scope.get("route"), scope.get("endpoint")))

    return asgi


def test_direct_routes_are_the_routes_the_router_picks() -> None:
    direct_app = create_app(Settings())
    stack = direct_app.router.middleware_stack
    assert isinstance(stack, DirectRoutes)
    assert stack.routes, "nothing is dispatched directly"
    for direct in (True, False):
        seen: list[Any] = []
        app = create_app(Settings(), direct_routes=direct)
        with TestClient(_recording(app, seen)) as client:
            for (path, method), route in stack.routes.items():
                seen.clear()
                client.request(method, path + "?shape=2&seed=1", json={"shape": [2]})
                # The same route object (its path is the metrics label) and endpoint.
                assert seen == [(route, route.endpoint)], (direct, path, method)


def test_direct_requests_never_reach_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings())
    stack = app.router.middleware_stack
    assert isinstance(stack, DirectRoutes)
    reached: list[str] = []
    router_stack = stack.app

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await router_stack(scope, receive, send)

    monkeypatch.setattr(stack, "app", router)
    client = TestClient(app)
    assert client.get(G).status_code == 200
    assert client.post("/v1/tensors", json={"shape": [2]}).status_code == 200
    assert client.get("/v1/tensors?shape=x").status_code == 422
    assert reached == []
    assert client.get("/healthz").status_code == 200
    # HEAD goes down the stack as a GET (app.api.head), so it is dispatched directly too.
    head = client.head(G)
    assert head.status_code == 200 and head.content == b""
    assert reached == ["/healthz"]


def test_a_root_path_goes_through_the_router() -> None:
    for direct in (True, False):
        app = create_app(Settings(), direct_routes=direct)
        client = TestClient(app, root_path="/api")
        res = client.get("/api" + G, headers=IDENTITY)
        assert res.status_code == 200
        assert res.json()["seed"] == 7


def test_direct_routes_take_only_raw_routes_without_path_parameters() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    with pytest.raises(ValueError, match="RawRoute"):
        DirectRoutes(app, health.router.routes)
    assert DIRECT_ROUTES and all(isinstance(r, tensors.RawRoute) for r in DIRECT_ROUTES)


# ------------------------------------------------------- the GET query and the per-app memo

PLAIN_QUERIES = [
    {"shape": "3,3", "seed": "1"},
    {"shape": "[]", "initializer": "ones"},  # a scalar: an explicit []; an empty shape= is a 422
    {"shape": "0,4", "initializer": "zeros", "seed": "0"},
    {"shape": "[2, 3]", "initializer": "HeNormal", "seed": "4294967295"},
    {"shape": "3,3", "dtype": "bfloat16", "layout": "torch", "compat": "keras"},
    {"shape": "3,3", "fan_in": "1", "fan_out": str(2**62), "seed": "0"},
    {"shape": f"{2**62},0"},
]
ODD_QUERIES = [  # TensorRequest refuses these (and names the field)
    {"shape": "3,-3"},
    {"shape": f"{2**62 + 1}"},
    {"shape": "3", "seed": "-1"},
    {"shape": "3", "fan_in": "0"},
    {"shape": "3", "dtype": "float8"},
    {"shape": "3", "layout": "jax"},
    {"shape": "3", "compat": "torch"},
    {"shape": "3", "initializer": '{"name":"ones"}'},
]


def _pydantic(query: dict[str, str]) -> TensorRequest:
    fields: dict[str, Any] = {
        "shape": tensor_request._query_shape(query["shape"]),
        "initializer": tensor_request._query_initializer(
            query.get("initializer") or "glorot_uniform"
        ),
        "seed": tensor_request._query_int("seed", query.get("seed")),
        "fan_in": tensor_request._query_int("fan_in", query.get("fan_in")),
        "fan_out": tensor_request._query_int("fan_out", query.get("fan_out")),
    }
    fields.update({k: query[k] for k in ("dtype", "layout", "compat") if k in query})
    return TensorRequest.model_validate(fields)


@pytest.mark.parametrize("query", PLAIN_QUERIES)
def test_plain_queries_are_taken_as_pydantic_would_take_them(query: dict[str, str]) -> None:
    fields = tensor_request.query_request(query)
    assert isinstance(fields, TensorRequest)
    assert fields.model_dump() == _pydantic(query).model_dump()


@pytest.mark.parametrize("query", ODD_QUERIES)
def test_other_queries_go_through_pydantic(query: dict[str, str]) -> None:
    try:
        expected: TensorRequest | Exception = _pydantic(query)
    except Exception as exc:  # the 422 TensorRequest gives
        expected = exc
    try:
        got: Any = tensor_request.query_request(query)
    except Exception as exc:
        got = exc
    if isinstance(expected, Exception):
        assert type(got).__name__ == "RequestValidationError"
        assert [e["loc"][1:] for e in got.errors()] == [e["loc"] for e in expected.errors()]  # type: ignore[attr-defined]
    else:
        assert isinstance(got, TensorRequest) and got == expected


def test_memoised_checks_give_the_same_plans_and_errors_every_time() -> None:
    settings = Settings(max_elements_json=100)
    context = TensorContext(settings, "0.1.0")
    for seed in (1, 2, None):
        req = TensorRequest(shape=[4, 5], initializer="glorot_uniform", seed=seed)
        memo = plan_tensor(
            req, media_type=formats.JSON, stats=False, settings=settings, memo=context.checked
        )
        fresh = plan_tensor(req, media_type=formats.JSON, stats=False, settings=settings)
        for attr in ("shape", "work", "fan_in", "fan_out", "seeded"):
            assert getattr(memo, attr) == getattr(fresh, attr)
        if seed is not None:
            assert memo.seed == fresh.seed and memo.keras_config == fresh.keras_config
    assert len(context.checked) == 1  # the seed is not part of the key
    # Another media type has another limit; an error is raised again, never kept.
    big = TensorRequest(shape=[20, 20], seed=1)
    binary = plan_tensor(
        big, media_type=formats.NPY, stats=False, settings=settings, memo=context.checked
    )
    assert binary.shape == (20, 20)
    for _ in range(2):
        with pytest.raises(TooLargeError):
            plan_tensor(
                big, media_type=formats.JSON, stats=False, settings=settings, memo=context.checked
            )
    assert len(context.checked) == 2


NAMES = sorted({entry["name"] for entry in engine.catalog()})


@pytest.mark.parametrize("ref", [*NAMES, {"name": "random_normal", "params": {"mean": 1.5}}])
@pytest.mark.parametrize("version", ["9.9.9", str(2**64 - 1)])
def test_memoised_plans_give_the_canonical_etag(ref: Any, version: str) -> None:
    settings = Settings()
    context = TensorContext(settings, version)
    name = engine.resolve(ref).name
    rank = 2 if name not in ("delta_orthogonal", "dirac") else 4
    shape = [4, 1, 3] if name == "stft" else [4] * rank  # stft: (frame_length, 1, bins)
    etags = set()
    for media_type in (formats.JSON, formats.OCTET_STREAM):
        for stats in (False, True):
            for seed in (0, 7, 2**32 - 1, 7):
                req = TensorRequest(shape=shape, initializer=ref, seed=seed)
                plan = plan_tensor(
                    req, media_type=media_type, stats=stats, settings=settings, memo=context.checked
                )
                fresh = plan_tensor(req, media_type=media_type, stats=stats, settings=settings)
                assert tensor_etag(plan, version) == tensor_etag(fresh, version)
                etags.add(tensor_etag(plan, version))
    assert context.checked
    # JSON and binary differ, stats only for JSON; the seed only for random schemes.
    random = "seed" in engine.resolve(ref).keras_config(0)["config"]
    assert len(etags) == (3 * 3 if random else 3)
