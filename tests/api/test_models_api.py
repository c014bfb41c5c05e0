"""/v1/models over HTTP: create and read, every artifact byte for byte against /v1/tensors,
caching, CORS and the problem+json refusals."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import load as load_safetensors

EVERY_LAYER = {
    "input_shape": [12, 10],
    "seed": 5,
    "layers": [
        {"type": "conv1d", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "batch_normalization"},
        {"type": "lstm", "units": 8, "return_sequences": True},
        {"type": "gru", "units": 4, "return_sequences": True},
        {"type": "simple_rnn", "units": 4, "return_sequences": True},
        {"type": "layer_normalization"},
        {"type": "flatten"},
        {"type": "dropout", "rate": 0.1},
        {
            "type": "dense",
            "units": 5,
            "kernel_initializer": "he_normal",
            "bias_initializer": "ones",
        },
        {"type": "activation", "activation": "softmax"},
    ],
}


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/v1/models", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"/v1/models/{resp.json()['id']}"
    return resp.json()


def tensor_of(client: TestClient, entry: dict[str, Any]) -> np.ndarray:
    """The weight its echoed initializer gives through /v1/tensors (binary)."""
    init = entry["initializer"]
    body = {"shape": entry["shape"], "initializer": init, "dtype": "float32"}
    if "seed" not in init["config"]:
        body["seed"] = 0  # deterministic schemes: any seed
    resp = client.post("/v1/tensors", json=body, headers={"Accept": "application/octet-stream"})
    assert resp.status_code == 200, resp.text
    arr = np.frombuffer(resp.content, dtype="<f4").reshape(entry["shape"]).copy()
    if entry.get("unit_forget_bias"):
        units = entry["shape"][-1] // 4
        arr[units : 2 * units] = 1.0
    return arr


def test_create_returns_the_manifest_and_links(client: TestClient) -> None:
    model = post(client, EVERY_LAYER)
    assert model["params"] == sum(int(np.prod(w["shape"])) for w in model["weights"])
    assert model["bytes"] == 4 * model["params"]
    assert model["seed"] == 5
    assert model["weights"][0]["name"] == "conv1d/kernel"
    assert [w["name"] for w in model["weights"]][-2:] == ["dense/kernel", "dense/bias"]
    base = f"/v1/models/{model['id']}"
    assert model["links"] == {
        "self": base,
        "model_json": f"{base}/model.json",
        "weights_bin": f"{base}/weights.bin",
        "safetensors": f"{base}/weights.safetensors",
        "npz": f"{base}/weights.npz",
        "keras_weights": f"{base}/model.weights.h5",
    }
    assert client.get(base).json() == model


def test_same_spec_same_id_and_a_drawn_seed_is_returned(client: TestClient) -> None:
    assert post(client, EVERY_LAYER)["id"] == post(client, EVERY_LAYER)["id"]
    assert post(client, {**EVERY_LAYER, "seed": 6})["id"] != post(client, EVERY_LAYER)["id"]
    drawn = post(client, {k: v for k, v in EVERY_LAYER.items() if k != "seed"})
    assert post(client, {**EVERY_LAYER, "seed": drawn["seed"]})["id"] == drawn["id"]


def test_every_weight_reproduces_from_its_echo_through_tensors(client: TestClient) -> None:
    model = post(client, EVERY_LAYER)
    blob = client.get(model["links"]["weights_bin"])
    assert blob.status_code == 200
    assert blob.headers["content-type"] == "application/octet-stream"
    assert len(blob.content) == model["bytes"]
    expected = b"".join(tensor_of(client, w).astype("<f4").tobytes() for w in model["weights"])
    assert blob.content == expected


def test_npz_and_safetensors_hold_the_same_bytes(client: TestClient) -> None:
    model = post(client, EVERY_LAYER)
    blob = client.get(model["links"]["weights_bin"]).content
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content), allow_pickle=False)
    st_resp = client.get(model["links"]["safetensors"])
    st = load_safetensors(st_resp.content)
    n = int.from_bytes(st_resp.content[:8], "little")
    meta = json.loads(st_resp.content[8 : 8 + n])["__metadata__"]
    assert json.loads(meta["spec"]) == model["spec"] and meta["seed"] == "5"
    offset = 0
    for w in model["weights"]:
        size = 4 * int(np.prod(w["shape"]))
        want = blob[offset : offset + size]
        offset += size
        assert npz[w["name"]].dtype == np.float32 and npz[w["name"]].tobytes() == want
        assert list(st[w["name"]].shape) == w["shape"] and st[w["name"]].tobytes() == want
    assert set(npz.files) == set(st) == {w["name"] for w in model["weights"]}


def test_the_forget_gate_bias_starts_at_one(client: TestClient) -> None:
    model = post(client, EVERY_LAYER)
    npz = np.load(io.BytesIO(client.get(model["links"]["npz"]).content))
    assert npz["lstm/bias"].tolist() == [0.0] * 8 + [1.0] * 8 + [0.0] * 16


def test_artifacts_are_immutable_with_strong_etags(client: TestClient) -> None:
    model = post(client, {**EVERY_LAYER, "layers": EVERY_LAYER["layers"][-2:], "input_shape": [7]})
    for name in ("model_json", "weights_bin", "safetensors", "npz", "keras_weights"):
        url = model["links"][name]
        first = client.get(url, headers={"Accept-Encoding": "identity"})
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag.startswith('"') and first.headers["cache-control"].endswith("immutable")
        again = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
        assert again.status_code == 304 and again.content == b""
        assert client.get(url).content == first.content


def test_model_files_answer_406_for_an_accept_they_cannot_produce(client: TestClient) -> None:
    # over 4 MiB, so model.json lists shards: 1101 * 1000 floats
    model = post(
        client, {"input_shape": [1100], "layers": [{"type": "dense", "units": 1000}], "seed": 2}
    )
    files = {
        "model_json": "application/json",
        "weights_bin": "application/octet-stream",
        "safetensors": "application/vnd.safetensors",
        "npz": "application/zip",
        "keras_weights": "application/x-hdf5",
    }
    urls = [(model["links"][name], media) for name, media in files.items()]
    urls.append((model["links"]["weights_shards"][0], "application/octet-stream"))
    for url, media in urls:
        main = media.split("/")[0]
        for accept in (None, "*/*", media, f"{main}/*", f"text/html, {media};q=0.5"):
            resp = client.head(url, headers={"Accept": accept} if accept else {})
            assert resp.status_code == 200, (url, accept)
            assert resp.headers["content-type"].split(";")[0] == media
        other = "application/xml" if media == "application/json" else "application/json"
        if media == "application/octet-stream":
            # weights.bin and the shards: TF.js sends them model.json's request headers.
            for accept in (other, "text/*", f"{media};q=0"):
                resp = client.get(url, headers={"Accept": accept})
                assert resp.status_code == 200 and resp.headers["content-type"] == media
            continue
        for accept in (other, "text/*", f"{media};q=0"):
            resp = client.get(url, headers={"Accept": accept})
            assert resp.status_code == 406, (url, accept)
            assert resp.headers["content-type"] == "application/problem+json"
            problem = resp.json()
            assert problem["errors"][0]["loc"] == ["header", "accept"]
            assert problem["errors"][0]["input"] == accept
            assert media in problem["detail"] and "?format" not in problem["detail"]


def test_a_gzipped_model_json_has_a_weak_etag_that_revalidates(client: TestClient) -> None:
    model = post(client, {**EVERY_LAYER, "layers": EVERY_LAYER["layers"][:3]})
    url = model["links"]["model_json"]
    plain = client.get(url, headers={"Accept-Encoding": "identity"}).headers["etag"]
    gzipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.headers["etag"] == f"W/{plain}"
    for etag in (plain, gzipped.headers["etag"]):
        again = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
        assert again.status_code == 304
    # binary files only when asked: ?compress=gzip
    weights = model["links"]["weights_bin"]
    assert client.get(weights, headers={"Accept-Encoding": "gzip"}).headers["etag"][0] == '"'
    asked = client.get(f"{weights}?compress=gzip", headers={"Accept-Encoding": "gzip"})
    assert asked.headers["content-encoding"] == "gzip" and asked.headers["etag"].startswith("W/")


def test_cors_exposes_what_a_browser_needs(client: TestClient) -> None:
    model = post(client, {"input_shape": [3], "layers": [{"type": "dense", "units": 2}], "seed": 1})
    resp = client.get(model["links"]["weights_bin"], headers={"Origin": "https://app.example"})
    exposed = {h.strip().lower() for h in resp.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "location"} <= exposed
    assert resp.headers["access-control-allow-origin"] == "*"


def test_model_json_of_a_reset_after_gru_is_a_clear_4xx(client: TestClient) -> None:
    model = post(
        client, {"input_shape": [3, 2], "layers": [{"type": "gru", "units": 2}], "seed": 1}
    )
    resp = client.get(model["links"]["model_json"])
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"].startswith("layers[0].reset_after: TF.js 4.22 cannot run a GRU")
    assert client.get(model["links"]["npz"]).status_code == 200


def test_unknown_model_is_404(client: TestClient) -> None:
    for suffix in ("", "/model.json", "/weights.bin"):
        resp = client.get(f"/v1/models/{'0' * 32}{suffix}")
        assert resp.status_code == 404
        assert resp.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "status", "loc", "detail"),
    [
        (
            {
                "input_shape": [4],
                "layers": [{"type": "dense", "units": 2}] * 3 + [{"type": "dense", "units": 0}],
            },
            422,
            ["body", "layers", 3, "units"],
            "layers[3].units: ",
        ),
        (
            {"input_shape": [4], "layers": [{"type": "maxpool"}]},
            422,
            ["body", "layers", 0, "type"],
            "layers[0].type: unknown layer type; supported: dense, flatten",
        ),
        (
            {
                "input_shape": [4],
                "layers": [{"type": "dense", "units": 2, "kernel_initializer": "nope"}],
            },
            422,
            ["body", "layers", 0, "kernel_initializer"],
            "layers[0].kernel_initializer: ",
        ),
        (
            {"layers": [{"type": "dense", "units": 2}]},
            422,
            ["body", "input_shape"],
            "input_shape: ",
        ),
        (
            {"input_shape": [10**6], "layers": [{"type": "dense", "units": 10**6}]},
            413,
            ["body", "layers", 0],
            "layers[0]: weight dense/kernel has 1000000000000 elements",
        ),
    ],
)
def test_bad_input_is_problem_json_naming_the_field(
    client: TestClient, body: dict[str, Any], status: int, loc: list[Any], detail: str
) -> None:
    resp = client.post("/v1/models", json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["detail"].startswith(detail)
    assert problem["errors"][0]["loc"] == loc


def test_malformed_json_is_a_4xx(client: TestClient) -> None:
    resp = client.post("/v1/models", content=b"{", headers={"Content-Type": "application/json"})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"


def test_model_limits_come_from_the_settings(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_model_params=100, max_model_layers=2)
    ok = small.post(
        "/v1/models", json={"input_shape": [4], "layers": [{"type": "dense", "units": 10}]}
    )
    assert ok.status_code == 201
    many = small.post("/v1/models", json={"input_shape": [4], "layers": [{"type": "dropout"}] * 3})
    assert many.status_code == 413 and many.json()["errors"][0]["loc"] == ["body", "layers"]
    big = small.post(
        "/v1/models", json={"input_shape": [4], "layers": [{"type": "dense", "units": 30}]}
    )
    assert big.status_code == 413 and "limit of 100" in big.json()["detail"]


# Kernels of 1.5, 4 and 6 MiB (11.5 MiB): 3 shards, two kernels straddling their boundaries.
SHARDED = {
    "input_shape": [768],
    "seed": 3,
    "layers": [
        {"type": "dense", "units": 512},
        {"type": "dense", "units": 2048},
        {"type": "dense", "units": 768},
    ],
}


def test_a_model_over_4_mib_lists_its_shards_in_model_json(client: TestClient) -> None:
    model = post(client, SHARDED)
    names = [f"group1-shard{i}of3.bin" for i in (1, 2, 3)]
    base = f"/v1/models/{model['id']}"
    assert model["links"]["weights_shards"] == [f"{base}/{n}" for n in names]
    (group,) = client.get(model["links"]["model_json"]).json()["weightsManifest"]
    assert group["paths"] == names
    whole = client.get(model["links"]["weights_bin"]).content
    pieces = []
    for url in model["links"]["weights_shards"]:
        resp = client.get(url, headers={"Accept-Encoding": "identity"})
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/octet-stream"
        assert int(resp.headers["content-length"]) == len(resp.content)
        etag = resp.headers["etag"]
        again = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
        assert again.status_code == 304 and again.headers["etag"] == etag
        pieces.append(resp.content)
    assert [len(p) for p in pieces[:2]] == [4 << 20] * 2
    assert b"".join(pieces) == whole and len(whole) == model["bytes"]
    assert len({client.get(u).headers["etag"] for u in model["links"]["weights_shards"]}) == 3


@pytest.mark.parametrize(
    "name", ["group1-shard0of3.bin", "group1-shard4of3.bin", "group1-shard1of2.bin"]
)
def test_a_shard_the_model_does_not_list_is_404(client: TestClient, name: str) -> None:
    model = post(client, SHARDED)
    resp = client.get(f"/v1/models/{model['id']}/{name}")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert "shards 1 to 3 of 3" in resp.json()["detail"]


def test_a_small_model_keeps_weights_bin_alone(client: TestClient) -> None:
    model = post(client, {**SHARDED, "layers": SHARDED["layers"][:1]})  # 1.5 MiB
    assert "weights_shards" not in model["links"]
    (group,) = client.get(model["links"]["model_json"]).json()["weightsManifest"]
    assert group["paths"] == ["weights.bin"]
    resp = client.get(f"/v1/models/{model['id']}/group1-shard1of1.bin")
    assert resp.status_code == 404 and "weights.bin alone" in resp.json()["detail"]


def test_npz_and_weights_h5_say_their_length_up_front(client: TestClient) -> None:
    model = post(client, EVERY_LAYER)
    blob = client.get(model["links"]["weights_bin"]).content
    for name, media in (("npz", "application/zip"), ("keras_weights", "application/x-hdf5")):
        resp = client.get(model["links"][name], headers={"Accept-Encoding": "identity"})
        assert resp.status_code == 200 and resp.headers["content-type"] == media
        assert int(resp.headers["content-length"]) == len(resp.content) > len(blob)
    with h5py.File(io.BytesIO(client.get(model["links"]["keras_weights"]).content)) as h5:
        assert h5["layers/lstm/cell/vars/2"][()].tobytes() == (
            np.load(io.BytesIO(client.get(model["links"]["npz"]).content))["lstm/bias"].tobytes()
        )
