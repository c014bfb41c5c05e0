"""IDX loading (MNIST, Fashion-MNIST) on small files the tests write, and the real Debian files."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import importlib.util
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.training.datasets import (
    DatasetError,
    DatasetUnavailableError,
    check_dataset,
    idx,
    list_datasets,
    load_dataset,
)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# Small IDX files the tests write (LeCun's format)


def idx_bytes(arr: np.ndarray, *, type_code: int = 0x08) -> bytes:
    """``0x00 0x00 <type> <ndim>``, big-endian uint32 dims, then the payload."""
    header = bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr).tobytes()


def write_idx(path: Path, payload: bytes, *, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_split(
    directory: Path, prefix: str, images: np.ndarray, labels: np.ndarray, *, gz: bool = True
) -> None:
    """``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]``."""
    write_idx(directory / f"{prefix}-images-idx3-ubyte", idx_bytes(images), gz=gz)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels), gz=gz)


def random_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


@pytest.fixture
def mnist_dir(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    images, labels = random_split(60, seed=1)
    t_images, t_labels = random_split(12, seed=2)
    write_split(tmp_path / "mnist", "train", images, labels)
    write_split(tmp_path / "mnist", "t10k", t_images, t_labels, gz=False)
    return tmp_path, images, labels, t_images, t_labels


def test_pixels_scaled_like_the_tf_tutorial_and_flattened(mnist_dir) -> None:
    data_dir, images, labels, _, _ = mnist_dir
    ds = load_dataset(
        {"name": "mnist", "validation_size": 0}, data_dir=data_dir, allow_downloads=False
    )
    expected = images.reshape(60, 784).astype(np.float32) * np.float32(1.0 / 255.0)
    assert ds.x_train.dtype == np.float32 and ds.x_train.flags.c_contiguous
    assert ds.x_train.shape == (60, 784)
    np.testing.assert_array_equal(ds.x_train, expected)
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, labels)
    assert (ds.task, ds.n_outputs, ds.input_dim, ds.n_classes) == ("multiclass", 10, 784, 10)
    assert ds.x_val.shape == (0, 784) and ds.y_val.shape == (0,)


def test_validation_taken_from_the_start_by_default_as_tf_read_data_sets(mnist_dir) -> None:
    data_dir, images, labels, _, _ = mnist_dir
    flat = images.reshape(60, 784).astype(np.float32) * np.float32(1.0 / 255.0)
    ds = load_dataset(
        {"name": "mnist", "validation_size": 10}, data_dir=data_dir, allow_downloads=False
    )
    np.testing.assert_array_equal(ds.x_val, flat[:10])
    np.testing.assert_array_equal(ds.y_val, labels[:10])
    np.testing.assert_array_equal(ds.x_train, flat[10:])
    end = load_dataset(
        {"name": "mnist", "validation_size": 10, "validation_from": "end", "train_size": 7},
        data_dir=data_dir,
        allow_downloads=False,
    )
    np.testing.assert_array_equal(end.x_val, flat[50:])
    np.testing.assert_array_equal(end.x_train, flat[:7])
    np.testing.assert_array_equal(end.y_train, labels[:7])
    start = load_dataset(
        {"name": "mnist", "validation_size": 10, "train_size": 7},
        data_dir=data_dir,
        allow_downloads=False,
    )
    np.testing.assert_array_equal(start.y_train, labels[10:17])


def test_raw_files_and_the_test_split(mnist_dir) -> None:
    data_dir, _, _, t_images, t_labels = mnist_dir
    ds = load_dataset(
        {"name": "mnist", "test": True, "validation_size": 5},
        data_dir=data_dir,
        allow_downloads=False,
    )
    assert ds.x_test is not None and ds.y_test is not None
    np.testing.assert_array_equal(ds.y_test, t_labels)
    np.testing.assert_array_equal(
        ds.x_test, t_images.reshape(12, 784).astype(np.float32) * np.float32(1 / 255)
    )
    assert ds.n_test == 12


def test_dotted_raw_names_are_found(tmp_path: Path) -> None:
    images, labels = random_split(8, seed=3)
    write_idx(tmp_path / "mnist" / "train-images.idx3-ubyte", idx_bytes(images), gz=False)
    write_idx(tmp_path / "mnist" / "train-labels.idx1-ubyte", idx_bytes(labels), gz=False)
    ds = load_dataset(
        {"name": "mnist", "validation_size": 2}, data_dir=tmp_path, allow_downloads=False
    )
    np.testing.assert_array_equal(ds.y_train, labels[2:])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x01\x08\x03" + b"\x00" * 12, "magic"),
        (idx_bytes(np.zeros((4, 28, 28), np.float32), type_code=0x0D), "data type 0x0d"),
        (idx_bytes(np.zeros((4, 27, 28), np.uint8)), "27x28"),
        (idx_bytes(np.zeros((4, 28), np.uint8)), "2 dimensions"),
        (idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-5], "the header says 3136"),
        (idx_bytes(np.zeros((4, 28, 28), np.uint8)) + b"\x00", "the header says 3136"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    ],
)
def test_malformed_image_files_are_refused(tmp_path: Path, payload: bytes, message: str) -> None:
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", payload, gz=True)
    write_idx(
        tmp_path / "mnist" / "train-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)), gz=True
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(
            {"name": "mnist", "validation_size": 1}, data_dir=tmp_path, allow_downloads=False
        )
    assert message in info.value.msg
    assert "train-images-idx3-ubyte.gz" in info.value.msg


def test_label_count_and_range_are_checked(tmp_path: Path) -> None:
    images, labels = random_split(6, seed=4)
    write_split(tmp_path / "mnist", "train", images, labels[:5])
    with pytest.raises(DatasetError, match="5 labels for 6 images"):
        load_dataset(
            {"name": "mnist", "validation_size": 1}, data_dir=tmp_path, allow_downloads=False
        )
    bad = labels.copy()
    bad[3] = 10
    write_split(tmp_path / "mnist", "train", images, bad)
    with pytest.raises(DatasetError, match=r"label 10 outside \[0, 10\)"):
        load_dataset(
            {"name": "mnist", "validation_size": 1}, data_dir=tmp_path, allow_downloads=False
        )


def test_missing_files_without_downloads_say_what_to_put_where(tmp_path: Path) -> None:
    ref = {"name": "mnist", "validation_size": 5000}
    for call in (load_dataset, check_dataset):
        with pytest.raises(DatasetUnavailableError) as info:
            call(ref, data_dir=tmp_path, allow_downloads=False)
        msg = info.value.msg
        assert str(tmp_path / "mnist") in msg
        assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
        assert "t10k" not in msg
        assert info.value.field == "dataset.name" and info.value.value == "mnist"
    with pytest.raises(DatasetUnavailableError, match=r"t10k-images-idx3-ubyte\.gz"):
        check_dataset({"name": "mnist", "test": True}, data_dir=tmp_path, allow_downloads=False)


def test_check_dataset_reads_only_headers_and_validates_sizes(mnist_dir) -> None:
    data_dir, *_ = mnist_dir
    info = check_dataset(
        {"name": "mnist", "validation_size": 20, "train_size": 30},
        data_dir=data_dir,
        allow_downloads=False,
    )
    assert (info["n_train"], info["n_val"], info["input_dim"], info["n_outputs"]) == (
        30,
        20,
        784,
        10,
    )
    assert info["available"] is True and info["where"] == str(data_dir / "mnist")
    assert info["params"] == {
        "validation_size": 20,
        "train_size": 30,
        "validation_from": "start",
        "test": False,
    }
    with pytest.raises(DatasetError) as too_big:
        check_dataset(
            {"name": "mnist", "validation_size": 60}, data_dir=data_dir, allow_downloads=False
        )
    assert too_big.value.field == "dataset.validation_size" and too_big.value.value == 60
    with pytest.raises(DatasetError) as too_many:
        check_dataset(
            {"name": "mnist", "validation_size": 20, "train_size": 41},
            data_dir=data_dir,
            allow_downloads=False,
        )
    assert too_many.value.field == "dataset.train_size"
    assert info["downloadable"] is False and "hint" not in info
    # Absent files with downloads on: accepted (sizes from the canonical counts), but not
    # reported as loadable now; the worker downloads them before the first run.
    remote = check_dataset({"name": "mnist"}, data_dir=data_dir / "empty", allow_downloads=True)
    assert remote["where"] == "download" and remote["n_train"] == 55_000
    assert remote["available"] is False and remote["downloadable"] is True
    assert str(data_dir / "empty" / "mnist") in remote["hint"]


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        ({"name": "mnist", "validation_size": -1}, "dataset.validation_size"),
        ({"name": "mnist", "validation_size": "5000"}, "dataset.validation_size"),
        ({"name": "mnist", "validation_size": True}, "dataset.validation_size"),
        ({"name": "mnist", "train_size": 0}, "dataset.train_size"),
        ({"name": "mnist", "validation_from": "middle"}, "dataset.validation_from"),
        ({"name": "mnist", "test": "yes"}, "dataset.test"),
        ({"name": "mnist", "batch": 3}, "dataset.batch"),
        ({"name": "cifar-10"}, "dataset.name"),
        ({"name": 7}, "dataset.name"),
        ({}, "dataset.name"),
        ([1, 2], "dataset"),
    ],
)
def test_invalid_references_name_the_field(mnist_dir, ref, field: str) -> None:
    data_dir, *_ = mnist_dir
    with pytest.raises(DatasetError) as info:
        check_dataset(ref, data_dir=data_dir, allow_downloads=False)
    assert info.value.field == field
    assert not isinstance(info.value, DatasetUnavailableError)


def test_list_datasets_reports_availability(mnist_dir) -> None:
    data_dir, *_ = mnist_dir
    entries = {e["name"]: e for e in list_datasets(data_dir, allow_downloads=False)}
    assert set(entries) >= {"mnist", "fashion-mnist", "circles", "moons", "spirals", "xor", "blobs"}
    mnist = entries["mnist"]
    assert mnist["available"] is True and mnist["where"] == str(data_dir / "mnist")
    assert (mnist["kind"], mnist["n_train"], mnist["n_val"], mnist["input_dim"]) == (
        "idx",
        55_000,
        5_000,
        784,
    )
    assert mnist["parameters"]["validation_size"]["default"] == 5000
    assert mnist["downloadable"] is False and "hint" not in mnist
    empty = {e["name"]: e for e in list_datasets(data_dir / "none", allow_downloads=False)}
    assert empty["mnist"]["available"] is False and empty["mnist"]["where"] is None
    assert empty["mnist"]["downloadable"] is False
    assert str(data_dir / "none" / "mnist") in empty["mnist"]["hint"]
    assert "enable downloads" in empty["mnist"]["hint"]
    # Downloads on but no files: "available" still means loadable now (no network needed).
    online = {e["name"]: e for e in list_datasets(data_dir / "none", allow_downloads=True)}
    assert online["mnist"]["where"] == "download" and online["mnist"]["available"] is False
    assert online["mnist"]["downloadable"] is True
    hint = online["mnist"]["hint"]
    assert "enable downloads" not in hint
    assert idx.MNIST.mirrors[0] in hint and str(data_dir / "none" / "mnist") in hint
    circles = entries["circles"]
    assert circles["where"] == "generated" and circles["kind"] == "synthetic"
    assert circles["available"] is True and circles["downloadable"] is False


def test_data_dir_takes_precedence_over_the_system_directory(tmp_path: Path) -> None:
    images, labels = random_split(9, seed=5)
    write_split(tmp_path / "fashion-mnist", "train", images, labels)
    ds = load_dataset(
        {"name": "fashion-mnist", "validation_size": 3}, data_dir=tmp_path, allow_downloads=False
    )
    np.testing.assert_array_equal(ds.y_train, labels[3:])


def _debian_reader():
    path = Path("/usr/share/doc/dataset-fashion-mnist/utils/mnist_reader.py")
    spec = importlib.util.spec_from_file_location("mnist_reader", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashion_mnist_from_the_debian_package_matches_its_own_reader(tmp_path: Path) -> None:
    reader = _debian_reader()
    ref_x, ref_y = reader.load_mnist(str(DEBIAN_FASHION), kind="t10k")
    ds = load_dataset(
        {"name": "fashion-mnist", "test": True}, data_dir=tmp_path, allow_downloads=False
    )
    assert ds.x_test is not None and ds.y_test is not None
    assert ds.x_test.shape == ref_x.shape == (10_000, 784)
    np.testing.assert_array_equal(ds.y_test, ref_y)
    np.testing.assert_array_equal(ds.x_test, ref_x.astype(np.float32) * np.float32(1 / 255))
    assert (ds.n_train, ds.n_val) == (55_000, 5_000)
    info = check_dataset({"name": "fashion-mnist"}, data_dir=tmp_path, allow_downloads=False)
    assert info["where"] == str(DEBIAN_FASHION)


# ---------------------------------------------------------------------------------------
# Downloads, from a local http.server standing in for the mirrors


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served directory) of an HTTP server on 127.0.0.1."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist/", root / "mnist"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _serve_split(served: Path, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    images, labels = random_split(n, seed=6)
    write_split(served, "train", images, labels)
    return images, labels


def _spec_for(served: Path, *, use_sha256: bool = True) -> idx.IdxSpec:
    """MNIST's spec with the checksums of the files the test serves."""

    def entry(f: idx.IdxFile) -> idx.IdxFile:
        data = (served / f.gz_name).read_bytes()
        return dataclasses.replace(
            f,
            gz_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest() if use_sha256 else None,
            md5=hashlib.md5(data).hexdigest(),
        )

    return dataclasses.replace(
        idx.MNIST,
        train_images=entry(idx.MNIST.train_images),
        train_labels=entry(idx.MNIST.train_labels),
    )


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_verifies_checksums_and_writes_atomically(tmp_path: Path, mirror) -> None:
    url, served = mirror
    _, labels = _serve_split(served)
    data_dir = tmp_path / "data"
    spec = _spec_for(served)
    paths = idx.download(spec, data_dir, test=False, mirrors=[url])
    assert _leftovers(data_dir / "mnist") == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert (
        paths["train-images-idx3-ubyte"].read_bytes()
        == (served / "train-images-idx3-ubyte.gz").read_bytes()
    )
    ds = load_dataset(
        {"name": "mnist", "validation_size": 4}, data_dir=data_dir, allow_downloads=False
    )
    np.testing.assert_array_equal(ds.y_train, labels[4:])


def test_failed_mirror_falls_back_to_the_next(tmp_path: Path, mirror) -> None:
    url, served = mirror
    _serve_split(served)
    spec = _spec_for(served, use_sha256=False)  # MD5 only, like Fashion-MNIST
    dead = url.replace("/mnist/", "/nothing-here/")
    idx.download(spec, tmp_path, test=False, mirrors=[dead, url])
    assert _leftovers(tmp_path / "mnist") == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]


def test_checksum_mismatch_refuses_the_file_and_says_why(tmp_path: Path, mirror) -> None:
    url, served = mirror
    _serve_split(served)  # not the real MNIST files: the canonical SHA-256 cannot match
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(
            {"name": "mnist"},
            data_dir=tmp_path,
            allow_downloads=True,
            mirrors={"mnist": [url]},
        )
    msg = info.value.msg
    assert "SHA-256 mismatch" in msg and idx.MNIST.train_images.sha256 in msg
    assert url + "train-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg  # where to put the files by hand
    assert _leftovers(tmp_path / "mnist") == []  # no partial or unverified file kept


def test_every_mirror_failing_names_each_url_and_error_not_enable_downloads(
    tmp_path: Path, mirror
) -> None:
    url, _ = mirror  # serves nothing under /mnist/: 404 from both mirrors
    other = url.replace("/mnist/", "/elsewhere/")
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(
            {"name": "mnist"},
            data_dir=tmp_path,
            allow_downloads=True,
            mirrors={"mnist": [url, other]},
        )
    msg = info.value.msg
    assert "could not be downloaded" in msg and "2 tried" in msg
    for base in (url, other):
        assert f"{base}train-images-idx3-ubyte.gz: HTTP Error 404" in msg
    assert "enable downloads" not in msg  # they are enabled: say where to put the files
    assert f"into {tmp_path / 'mnist'}" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert info.value.field == "dataset.name" and info.value.value == "mnist"


def test_md5_mismatch_is_refused(tmp_path: Path, mirror) -> None:
    url, served = mirror
    _serve_split(served)
    spec = _spec_for(served, use_sha256=False)
    bad = dataclasses.replace(
        spec, train_labels=dataclasses.replace(spec.train_labels, md5="0" * 32)
    )
    with pytest.raises(DatasetUnavailableError, match="MD5 mismatch"):
        idx.download(bad, tmp_path, test=False, mirrors=[url])
    assert "train-labels-idx1-ubyte.gz" not in _leftovers(tmp_path / "mnist")


def test_oversize_download_is_cut_off(tmp_path: Path, mirror) -> None:
    url, served = mirror
    served.mkdir(parents=True)
    (served / "train-images-idx3-ubyte.gz").write_bytes(b"\0" * (idx._DOWNLOAD_SLACK + 100))
    spec = dataclasses.replace(
        idx.MNIST, train_images=dataclasses.replace(idx.MNIST.train_images, gz_bytes=10)
    )
    with pytest.raises(DatasetUnavailableError, match="bytes, refused"):
        idx.download(spec, tmp_path, test=False, mirrors=[url])
    assert _leftovers(tmp_path / "mnist") == []
