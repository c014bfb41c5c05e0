"""The fast request path of ``/v1/tensors``: cached resolution and configs, query parsing."""

from __future__ import annotations

import math

import pytest
from starlette.datastructures import QueryParams

from app import initializers as engine
from app.api.routes import tensors
from app.api.routes.tensors import Resolved, resolve_ref

NAMES = sorted({entry["name"] for entry in engine.catalog()})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1])
def test_cached_configs_equal_the_engines_for_every_scheme(name: str, seed: int) -> None:
    resolved = resolve_ref(name)
    init = engine.resolve(name)
    # Same values and the same key order (the JSON bytes and ETags depend on it).
    assert list(resolved.keras_config(seed)["config"].items()) == list(
        init.keras_config(seed)["config"].items()
    )
    assert resolved.keras_config(seed) == init.keras_config(seed)
    assert list(resolved.tfjs_config(seed)["config"].items()) == list(
        init.tfjs_config(seed)["config"].items()
    )
    assert resolved.tfjs_config(seed) == init.tfjs_config(seed)


def test_resolution_is_cached_per_exact_reference_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_in"}}
    assert resolve_ref(ref) is resolve_ref(dict(ref))
    assert resolve_ref("he_normal") is resolve_ref("he_normal")
    assert resolve_ref("he_normal") is not resolve_ref("HeNormal")
    # 2 and 2.0 are different texts, resolved separately, to equal initializers.
    as_int = resolve_ref({"name": "constant", "params": {"value": 2}})
    as_float = resolve_ref({"name": "constant", "params": {"value": 2.0}})
    assert as_int is not as_float and as_int.keras == as_float.keras
    monkeypatch.setattr(tensors, "RESOLVED_MAX", 3)
    for scale in range(1, 10):
        resolve_ref({"name": "variance_scaling", "params": {"scale": float(scale)}})
    assert len(tensors._RESOLVED) == 3


def test_nan_is_not_confused_with_null_by_the_cache() -> None:
    with pytest.raises(engine.InitializerError) as nan:
        resolve_ref({"name": "constant", "params": {"value": math.nan}})
    assert "finite" in nan.value.msg
    with pytest.raises(engine.InitializerError) as null:
        resolve_ref({"name": "constant", "params": {"value": None}})
    assert "null" in null.value.msg
    # Errors are never cached: the same bad reference fails again.
    with pytest.raises(engine.InitializerError):
        resolve_ref({"name": "constant", "params": {"value": math.nan}})


def test_resolved_is_what_the_engine_generates_from() -> None:
    resolved = Resolved.of("glorot_uniform")
    a = engine.generate(resolved.init, (4, 5), seed=3)
    b = engine.generate(engine.resolve("glorot_uniform"), (4, 5), seed=3)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "query",
    [
        b"",
        b"shape=3,3&initializer=he_normal&seed=1",
        b"shape=3%2C3&initializer=%7B%22name%22%3A%22ones%22%7D",
        b"a=1&a=2&b",
        b"&&shape=2&",
        b"x=a+b&y=%20c",
        b"stats=&format=json",
        b"k=v=w",
        b"caf%C3%A9=%E9",
    ],
)
def test_query_parsing_matches_starlette(query: bytes) -> None:
    expected = QueryParams(query)
    assert tensors._query(query) == {k: expected[k] for k in expected}
