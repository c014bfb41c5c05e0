"""A model's files from real uvicorn API processes: the same bytes from two processes, and the
API's peak memory while serving them measured against the model's size (a memory bound, not a
timing one; ``tests.process_memory.growth_bytes``).

- One file at a time (``.npz``, ``.weights.h5``, ``weights.bin``, a shard) of a 128 MiB model of
  eight 16 MiB kernels: the API grows by about one kernel (16-17 MiB measured), bounded here by a
  third of the model. A server that held the model or the file would grow by all of it.
- Every shard at once (what ``tf.loadLayersModel`` does) of a model that is one 64 MiB kernel
  in 16 shards: the API holds the kernel (generated once for the 16 requests, ``RecentWeights``)
  and the 4 MiB bodies in flight, each perhaps also copied into its socket's buffer: at most 3
  times the model, the bound here (105 MiB measured, 123 MiB with a copy of the kernel per
  request: generating it holds the GIL, so the copies do not pile up, and sharing saves the
  CPU of 15 generations rather than memory).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.process_memory import growth_bytes

pytestmark = pytest.mark.integration

MiB = 1 << 20
# 2048 -> 2048 (x 8): eight kernels of 16 MiB, 128 MiB + biases (33 shards).
SERIAL: dict[str, Any] = {
    "input_shape": [2048],
    "seed": 9,
    "layers": [{"type": "dense", "units": 2048} for _ in range(8)],
}
# 4096 -> 4096 without bias: one kernel of 64 MiB, straddling 16 shards.
ONE_KERNEL: dict[str, Any] = {
    "input_shape": [4096],
    "seed": 9,
    "layers": [{"type": "dense", "units": 4096, "use_bias": False}],
}


def _digest(url: str) -> tuple[str, int]:
    """(SHA-256 of the body, its length), streamed."""
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        length = int(resp.headers["content-length"])
        for chunk in resp.iter_bytes():
            digest.update(chunk)
    assert resp.num_bytes_downloaded == length
    return digest.hexdigest(), length


def _post(base: str, spec: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{base}/v1/models", json=spec, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_model_files_stream_in_far_less_than_the_model(start_api: Callable) -> None:
    api = start_api()
    model = _post(api.url, SERIAL)
    size = model["bytes"]
    assert size == 128 * MiB + 8 * 2048 * 4
    shards = model["links"]["weights_shards"]
    assert len(shards) == 33
    # a shard inside the second kernel: that kernel alone is generated
    for name, url in [*((k, model["links"][k]) for k in ("npz", "keras_weights", "weights_bin")),
                      ("shard 6", shards[5])]:  # fmt: skip
        (_, length), grew = growth_bytes(api.pid, lambda url=url: _digest(api.url + url))
        assert length >= (size if name != "shard 6" else 4 * MiB)
        assert grew < size / 3, f"{name}: grew {grew / MiB:.0f} MiB of a {size / MiB:.0f} MiB model"


def test_all_shards_at_once_share_the_weight_they_straddle(start_api: Callable) -> None:
    api = start_api()
    model = _post(api.url, ONE_KERNEL)
    size = model["bytes"]
    shards = model["links"]["weights_shards"]
    assert (size, len(shards)) == (64 * MiB, 16)
    got: dict[int, str] = {}

    def fetch_all() -> None:
        def one(i: int) -> None:
            body = httpx.get(api.url + shards[i], timeout=120).content
            assert len(body) == 4 * MiB
            got[i] = hashlib.sha256(body).hexdigest()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(shards))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    _, grew = growth_bytes(api.pid, fetch_all)
    # the shards are weights.bin's 4 MiB pieces, in order
    want: list[str] = []
    with httpx.stream("GET", api.url + model["links"]["weights_bin"], timeout=120) as resp:
        for piece in resp.iter_bytes(4 * MiB):
            want.append(hashlib.sha256(piece).hexdigest())
    assert [got[i] for i in range(len(shards))] == want
    assert grew < 3 * size, f"grew {grew / MiB:.0f} MiB for a {size / MiB:.0f} MiB model"


def test_two_api_processes_serve_the_same_bytes(start_api: Callable) -> None:
    first, second = start_api(), start_api()
    spec = {**SERIAL, "layers": [{"type": "dense", "units": 1100}, *SERIAL["layers"][:1]]}
    models = [_post(api.url, spec) for api in (first, second)]
    assert models[0] == models[1]
    links = models[0]["links"]
    assert len(links["weights_shards"]) > 1
    urls = [links[k] for k in ("npz", "keras_weights", "model_json", "weights_bin")]
    for url in [*urls, *links["weights_shards"]]:
        assert _digest(first.url + url) == _digest(second.url + url), url
