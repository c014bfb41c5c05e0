"""The request path of ``/v1/tensors``: the per-app memo of checks (configs kept with them,
keyed on the exact reference, bounded, errors never kept), the GET query's reading, the
format names and the rank-0 spelling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import Headers, QueryParams

from app import initializers as engine
from app.api import formats
from app.api.tensor_plan import TensorContext, check_tensor, plan_tensor
from app.api.tensor_request import FORMAT_NAMES, read_headers, read_query
from app.api.tensor_response import array_for
from app.config import Settings
from app.errors import InvalidInputError
from app.schemas.bounds import MAX_DIM, MAX_FAN, SEED_MAX
from app.schemas.tensors import TensorRequest

NAMES = sorted({entry["name"] for entry in engine.catalog()})
SETTINGS = Settings()


def _check(ref: Any, shape: list[int] | None = None) -> Any:
    name = engine.resolve(ref).name
    rank = 4 if name in ("delta_orthogonal", "dirac") else 2
    default = [4, 1, 3] if name == "stft" else [4] * rank  # stft: (frame_length, 1, bins)
    req = TensorRequest(shape=shape or default, initializer=ref)
    return check_tensor(req, media_type=formats.JSON, settings=SETTINGS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1])
def test_kept_configs_equal_the_engines_for_every_scheme(name: str, seed: int) -> None:
    checked = _check(name)
    init = engine.resolve(name)
    # Same values and the same key order (the JSON bytes and ETags depend on it).
    assert list(checked.keras_config(seed)["config"].items()) == list(
        init.keras_config(seed)["config"].items()
    )
    assert checked.keras_config(seed) == init.keras_config(seed)
    assert list(checked.tfjs_config(seed)["config"].items()) == list(
        init.tfjs_config(seed)["config"].items()
    )
    assert checked.tfjs_config(seed) == init.tfjs_config(seed)


def test_the_memo_is_keyed_on_the_exact_reference_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = TensorContext(SETTINGS, "0.1.0")

    def plan(ref: Any, seed: int = 1) -> Any:
        req = TensorRequest(shape=[3], initializer=ref, seed=seed)
        return plan_tensor(
            req, media_type=formats.JSON, stats=False, settings=SETTINGS, memo=context.checked
        )

    ref = {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_in"}}
    assert plan(ref).checked is plan(dict(ref), seed=2).checked
    assert plan("he_normal").checked is plan("he_normal", seed=3).checked
    assert plan("he_normal").checked is not plan("HeNormal").checked
    # 2 and 2.0 are different texts, checked separately, to equal initializers.
    as_int = plan({"name": "constant", "params": {"value": 2}}).checked
    as_float = plan({"name": "constant", "params": {"value": 2.0}}).checked
    assert as_int is not as_float and as_int.keras == as_float.keras
    monkeypatch.setattr(TensorContext, "MEMO_MAX", 3)
    for scale in range(1, 10):
        plan({"name": "variance_scaling", "params": {"scale": float(scale)}})
        assert len(context.checked) <= 3


def test_a_long_reference_is_checked_each_time_not_kept() -> None:
    # A Keras object may carry any ``module`` text: kept, 1 MiB references would fill the
    # memo with ~1 GiB. Long ones are answered alike but never kept.
    context = TensorContext(SETTINGS, "0.1.0")
    long_ref = {"class_name": "HeNormal", "config": {}, "module": "keras." + "x" * 100_000}
    req = TensorRequest(shape=[3, 3], initializer=long_ref, seed=1)
    plan = plan_tensor(
        req, media_type=formats.JSON, stats=False, settings=SETTINGS, memo=context.checked
    )
    assert plan.init.name == "he_normal"
    assert context.checked == {}
    short = TensorRequest(shape=[3, 3], initializer={"class_name": "HeNormal", "config": {}})
    plan_tensor(
        short, media_type=formats.JSON, stats=False, settings=SETTINGS, memo=context.checked
    )
    assert len(context.checked) == 1


def test_nan_is_not_confused_with_null_by_the_memo() -> None:
    context = TensorContext(SETTINGS, "0.1.0")

    def plan(value: Any) -> None:
        req = TensorRequest(shape=[2], initializer={"name": "constant", "params": {"value": value}})
        plan_tensor(
            req, media_type=formats.JSON, stats=False, settings=SETTINGS, memo=context.checked
        )

    with pytest.raises(InvalidInputError) as nan:
        plan(math.nan)
    assert "finite" in str(nan.value)
    with pytest.raises(InvalidInputError) as null:
        plan(None)
    assert "null" in str(null.value)
    # Errors are never kept: the same bad reference fails again.
    with pytest.raises(InvalidInputError):
        plan(math.nan)
    assert not context.checked


def test_the_planned_initializer_is_what_the_engine_generates_from() -> None:
    req = TensorRequest(shape=[4, 5], initializer="glorot_uniform", seed=3)
    plan = plan_tensor(req, media_type=formats.NPY, stats=False, settings=SETTINGS)
    b = engine.generate(engine.resolve("glorot_uniform"), (4, 5), seed=3)
    assert array_for(plan).tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "query",
    [
        b"",
        b"shape=3,3&initializer=he_normal&seed=1",
        b"shape=3%2C3&initializer=%7B%22name%22%3A%22ones%22%7D",
        b"a=1&b",
        b"&&shape=2&",
        b"x=a+b&y=%20c",
        b"stats=&format=json",
        b"k=v=w",
        b"caf%C3%A9=%E9",
    ],
)
def test_query_parsing_matches_starlette(query: bytes) -> None:
    expected = QueryParams(query)
    names = list(expected)
    assert read_query({"query_string": query}, names) == {k: expected[k] for k in expected}


@pytest.mark.parametrize("query", [b"a=1&a=2", b"a=1&b=%20&a=3", b"a&a"])
def test_a_repeated_query_name_is_refused(query: bytes) -> None:
    with pytest.raises(InvalidInputError) as info:
        read_query({"query_string": query}, ["a", "b"])
    assert info.value.errors is not None and info.value.errors[0]["loc"] == ["query", "a"]
    assert "more than once" in info.value.detail


@pytest.mark.parametrize(("query", "name"), [(b"a=1&c=2", "c"), (b"caf%C3%A9=1", "café")])
def test_an_unknown_query_name_is_refused(query: bytes, name: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        read_query({"query_string": query}, ["a", "b"])
    assert info.value.errors is not None and info.value.errors[0]["loc"] == ["query", name]


def test_headers_are_read_as_starlette_reads_them() -> None:
    raw = [(b"accept", b"application/x-npy"), (b"if-none-match", b'W/"a", "b"'), (b"x", b"y")]
    headers = Headers(raw=raw)
    assert read_headers({"headers": raw}) == (headers["accept"], headers["if-none-match"])
    assert read_headers({"headers": [(b"x", b"y")]}) == (None, None)


# --------------------------------------------------------------------------- format names

ALIASES = {
    "application/json": ["json", "application/json", "JSON", "Application/Json"],
    "application/octet-stream": ["binary", "application/octet-stream", "octet-stream", "BINARY"],
    "application/x-npy": ["npy", "application/x-npy", "x-npy", "NPY"],
    "application/vnd.safetensors": [
        "safetensors",
        "application/vnd.safetensors",
        "vnd.safetensors",
        "SafeTensors",
    ],
}


def test_format_names_come_from_the_formats_table() -> None:
    assert set(FORMAT_NAMES.values()) == set(formats.FORMATS.values()) == set(ALIASES)
    for media, names in ALIASES.items():
        for name in names:
            assert FORMAT_NAMES[name.lower()] == media


@pytest.mark.parametrize("media", list(ALIASES))
def test_every_format_name_gives_the_same_answer_as_accept(client: TestClient, media: str) -> None:
    url = "/v1/tensors?shape=4,3&initializer=he_normal&seed=5"
    by_accept = client.get(url, headers={"Accept": media, "Accept-Encoding": "identity"})
    assert by_accept.status_code == 200
    for name in ALIASES[media]:
        for res in (
            client.get(f"{url}&format={name}", headers={"Accept-Encoding": "identity"}),
            client.post(
                f"/v1/tensors?format={name}",
                json={"shape": [4, 3], "initializer": "he_normal", "seed": 5},
                headers={"Accept-Encoding": "identity"},
            ),
        ):
            assert res.status_code == 200, (name, res.text)
            assert res.headers["content-type"] == media
            assert res.content == by_accept.content


@pytest.mark.parametrize("fmt", ["xml", "bin", "application/npy", "octet", "x-json", "vnd."])
def test_an_unknown_format_is_a_422_listing_the_names(client: TestClient, fmt: str) -> None:
    res = client.get("/v1/tensors", params={"shape": "3", "format": fmt})
    assert res.status_code == 422
    problem = res.json()
    assert problem["errors"][0]["loc"] == ["query", "format"]
    assert problem["errors"][0]["input"] == fmt
    for name in ("octet-stream", "application/x-npy", "vnd.safetensors"):
        assert name in problem["detail"]


# ----------------------------------------------------------------- shape= and rank-0 tensors


@pytest.mark.parametrize("shape", ["", " ", "%09", "%20%20"])
def test_an_empty_get_shape_is_a_422_naming_shape(client: TestClient, shape: str) -> None:
    res = client.get(f"/v1/tensors?shape={shape}&initializer=ones&seed=1")
    assert res.status_code == 422, res.text
    problem = res.json()
    assert problem["errors"][0]["loc"] == ["query", "shape"]
    assert "shape=[]" in problem["detail"]  # says how to ask for a scalar


@pytest.mark.parametrize("shape", ["[]", "()", "[ ]", "%5B%5D"])
def test_a_scalar_is_asked_for_explicitly(client: TestClient, shape: str) -> None:
    res = client.get(f"/v1/tensors?shape={shape}&initializer=ones&seed=1&format=npy")
    assert res.status_code == 200, res.text
    post = client.post(
        "/v1/tensors?format=npy", json={"shape": [], "initializer": "ones", "seed": 1}
    )
    assert res.content == post.content
    assert res.headers["x-tensor-shape"] == ""
    import io

    assert np.load(io.BytesIO(res.content)).shape == ()


# -------------------------------------------------------- one statement of each bound (OpenAPI)


def test_get_parameters_state_the_models_bounds(client: TestClient) -> None:
    get = client.get("/openapi.json").json()["paths"]["/v1/tensors"]["get"]
    params = {p["name"]: p["schema"] for p in get["parameters"]}
    assert params["shape"]["items"]["maximum"] == MAX_DIM
    assert params["shape"]["items"]["minimum"] == 0
    assert params["seed"]["maximum"] == SEED_MAX and params["seed"]["minimum"] == 0
    assert params["fan_in"]["maximum"] == params["fan_out"]["maximum"] == MAX_FAN
    assert params["fan_in"]["minimum"] == params["fan_out"]["minimum"] == 1
    assert params["dtype"]["enum"] == list(engine.DTYPES)
    assert params["layout"]["enum"] == list(engine.LAYOUTS)
    assert params["format"]["enum"] == list(FORMAT_NAMES)
