"""POST/GET /v1/datasets: .npz uploads (multipart or raw) and the bad-upload catalogue."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


def npz(compressed: bool = False, **arrays: Any) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def good_arrays(n: int = 64, d: int = 5, classes: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(n, d)).astype(np.float32),
        "y_train": rng.integers(0, classes, n),
        "x_val": rng.normal(size=(16, d)).astype(np.float32),
        "y_val": rng.integers(0, classes, 16),
    }


def assert_problem(res: Any, status: int, *needles: str) -> dict[str, Any]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = res.json()
    text = res.text
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text}"
    return body


def test_multipart_upload_round_trip(client: TestClient) -> None:
    data = npz(**good_arrays())
    res = client.post("/v1/datasets", files={"file": ("three-blobs.npz", data)})
    assert res.status_code == 201, res.text
    body = res.json()
    assert res.headers["location"] == f"/v1/datasets/{body['id']}"
    assert body["id"].startswith("ds_")
    assert body["name"] == "three-blobs"
    assert (body["n_train"], body["n_val"], body["input_dim"]) == (64, 16, 5)
    assert body["task"] == "multiclass" and body["n_classes"] == 3
    assert body["bytes"] == len(data)
    assert body["expires_at"] > body["created_at"]
    assert body["ref"] == {"name": "upload", "id": body["id"]}

    got = client.get(res.headers["location"])
    assert got.status_code == 200 and got.json()["n_train"] == 64

    listing = client.get("/v1/datasets").json()["datasets"]
    names = [d["name"] for d in listing]
    assert "mnist" in names and "fashion-mnist" in names and "circles" in names
    uploads = [d for d in listing if d.get("kind") == "upload"]
    assert body["id"] in [d["id"] for d in uploads]
    assert all(d["available"] is True for d in uploads)


def test_raw_body_upload_with_name_and_task(client: TestClient) -> None:
    arrays = good_arrays(classes=2)
    res = client.post(
        "/v1/datasets?name=pairs&task=binary",
        content=npz(compressed=True, **arrays),
        headers={"content-type": "application/octet-stream"},
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["name"] == "pairs" and body["task"] == "binary" and body["n_classes"] == 2


def test_builtin_dataset_by_name_and_unknown_id(client: TestClient) -> None:
    res = client.get("/v1/datasets/circles")
    assert res.status_code == 200 and res.json()["kind"] == "synthetic"
    assert_problem(client.get("/v1/datasets/ds_000000000000000000000000"), 404, "ds_0000")


def _object_array_npz() -> bytes:
    x = np.empty((4, 2), dtype=object)
    x[:] = 1.0
    return npz(x_train=x, y_train=np.zeros(4, dtype=np.int64))


BAD_UPLOADS: list[tuple[str, Callable[[], bytes], tuple[str, ...]]] = [
    ("not-npz", lambda: b"this is not a zip archive at all" * 10, ("not an .npz",)),
    ("pickled", _object_array_npz, ("x_train", "pickle")),
    (
        "x-1d",
        lambda: npz(x_train=np.zeros(8, np.float32), y_train=np.zeros(8, np.int64)),
        ("x_train", "2-D"),
    ),
    (
        "rows-mismatch",
        lambda: npz(x_train=np.zeros((8, 2), np.float32), y_train=np.zeros(7, np.int64)),
        ("y_train", "7 rows"),
    ),
    (
        "nan",
        lambda: npz(
            x_train=np.array([[0.0, 1.0], [np.nan, 2.0]], np.float32),
            y_train=np.zeros(2, np.int64),
        ),
        ("x_train", "NaN"),
    ),
    (
        "negative-label",
        lambda: npz(x_train=np.zeros((3, 2), np.float32), y_train=np.array([0, -1, 1])),
        ("y_train", ">= 0"),
    ),
    (
        "huge-label",
        lambda: npz(x_train=np.zeros((3, 2), np.float32), y_train=np.array([0, 10**6, 1])),
        ("y_train", "10000"),
    ),
    (
        "missing-y",
        lambda: npz(x_train=np.zeros((3, 2), np.float32)),
        ("y_train", "missing"),
    ),
    (
        "val-features",
        lambda: npz(
            x_train=np.zeros((3, 2), np.float32),
            y_train=np.zeros(3, np.int64),
            x_val=np.zeros((2, 3), np.float32),
            y_val=np.zeros(2, np.int64),
        ),
        ("x_val", "features"),
    ),
]


@pytest.mark.parametrize(("case", "make", "needles"), BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
def test_bad_uploads_are_422_naming_the_key(
    client: TestClient, case: str, make: Callable[[], bytes], needles: tuple[str, ...]
) -> None:
    res = client.post("/v1/datasets", files={"file": (f"{case}.npz", make())})
    body = assert_problem(res, 422, *needles)
    assert body["errors"][0]["loc"][0] == "body"


def test_zip_bomb_is_refused_before_decompressing(client: TestClient) -> None:
    # 400 MB of zeros compress to a few hundred KB: far beyond the allowed expansion.
    x = np.zeros((100_000, 1000), dtype=np.float32)
    data = npz(compressed=True, x_train=x, y_train=np.zeros(100_000, np.int64))
    assert len(data) < 2_000_000
    assert_problem(client.post("/v1/datasets", files={"file": ("bomb.npz", data)}), 413)


@pytest.fixture
def small_limit_client(make_client: Callable[..., TestClient]) -> Iterator[TestClient]:
    yield make_client(max_upload_bytes=4096)


def test_oversize_content_length_is_413(small_limit_client: TestClient) -> None:
    data = npz(**good_arrays(n=400))
    assert len(data) > 4096
    res = small_limit_client.post(
        "/v1/datasets", content=data, headers={"content-type": "application/octet-stream"}
    )
    assert_problem(res, 413, "4096")
    res = small_limit_client.post("/v1/datasets", files={"file": ("big.npz", data)})
    assert_problem(res, 413, "4096")


def test_oversize_chunked_body_is_413_while_streaming(small_limit_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 64 KiB in all, without a Content-Length
            yield b"\0" * 1024

    res = small_limit_client.post(
        "/v1/datasets", content=chunks(), headers={"content-type": "application/octet-stream"}
    )
    assert_problem(res, 413, "4096")


def test_multipart_without_file_field_and_wrong_content_type(client: TestClient) -> None:
    res = client.post("/v1/datasets", files={"data": ("x.npz", npz(**good_arrays()))})
    assert_problem(res, 422, "file")
    res = client.post("/v1/datasets", content=b"x", headers={"content-type": "text/plain"})
    assert_problem(res, 415, "multipart/form-data")
    res = client.post("/v1/datasets?name=%3Cscript%3E", files={"file": ("a.npz", b"x")})
    assert_problem(res, 422, "name")
    res = client.post("/v1/datasets?task=ranking", files={"file": ("a.npz", b"x")})
    assert_problem(res, 422, "task")


def test_zip_bomb_413_names_the_body(client: TestClient) -> None:
    x = np.zeros((100_000, 1000), dtype=np.float32)
    data = npz(compressed=True, x_train=x, y_train=np.zeros(100_000, np.int64))
    body = assert_problem(
        client.post("/v1/datasets", files={"file": ("bomb.npz", data)}), 413, "decompress"
    )
    assert body["errors"][0]["loc"] == ["body"]
    assert body["errors"][0]["input"] > 64 * len(data)


def test_an_array_over_the_element_limit_is_413_naming_it(
    make_client: Callable[..., TestClient],
) -> None:
    c = make_client(max_dataset_elements=1000)
    data = npz(x_train=np.zeros((101, 10), np.float32), y_train=np.zeros(101, np.int64))
    body = assert_problem(
        c.post("/v1/datasets", files={"file": ("wide.npz", data)}), 413, "1010 elements", "1000"
    )
    assert body["errors"][0]["loc"] == ["body", "x_train"]
    assert body["errors"][0]["input"] == [101, 10]


def test_redis_errors_of_the_upload_store_are_not_turned_into_client_errors(
    make_client: Callable[..., TestClient],
) -> None:
    import redis

    from app.embedded_redis import free_port
    from app.jobs.uploads import DatasetStore

    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = DatasetStore(redis.Redis.from_url(dead), ttl_seconds=60, max_uploads=1)
    for call in (
        lambda: store.put(b"x", owner="o"),
        lambda: store.check_quota("o", 1),
        lambda: store.meta("ds_x"),
        lambda: store.delete("ds_x"),
        lambda: store.list(owner="o"),
    ):
        with pytest.raises(redis.ConnectionError):
            call()
    # Over HTTP they reach the app's Redis-down handling (a 5xx, never a 4xx or a 2xx).
    c = TestClient(make_client(redis_url=dead).app, raise_server_exceptions=False)
    for res in (
        c.post("/v1/datasets", files={"file": ("a.npz", npz(**good_arrays()))}),
        c.get("/v1/datasets"),
        c.get("/v1/datasets/ds_000000000000000000000000"),
        c.delete("/v1/datasets/ds_000000000000000000000000"),
    ):
        assert res.status_code >= 500, res.text
