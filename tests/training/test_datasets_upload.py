"""Uploaded .npz datasets: parsing without pickle, validation, zip-bomb and header guards."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.training.datasets import (
    DatasetError,
    DatasetTooLargeError,
    check_dataset,
    dataset_from_arrays,
    describe_npz,
    load_dataset,
    parse_npz,
)

MB = 1 << 20


def _npz(compressed: bool = False, **arrays: object) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _classification(n: int = 50, d: int = 4, classes: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(size=(n, d)),
        "y_train": rng.integers(0, classes, size=n),
        "x_val": rng.normal(size=(10, d)).astype(np.float32),
        "y_val": rng.integers(0, classes, size=10).astype(np.int32),
    }


@pytest.mark.parametrize("compressed", [False, True])
def test_round_trip_and_multiclass_inference(compressed: bool) -> None:
    arrays = _classification()
    parsed = parse_npz(_npz(compressed, **arrays), max_bytes=MB)
    assert set(parsed) == {"x_train", "y_train", "x_val", "y_val"}
    ds = dataset_from_arrays("upload:abc", parsed)
    assert ds.task == "multiclass" and ds.input_dim == 4
    assert ds.n_outputs == int(max(arrays["y_train"].max(), arrays["y_val"].max())) + 1
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, arrays["x_train"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_val, arrays["y_val"])


def test_float_targets_are_regression_and_binary_on_request() -> None:
    x = np.ones((6, 2))
    reg = dataset_from_arrays("r", {"x_train": x, "y_train": np.arange(6.0)})
    assert reg.task == "regression" and reg.y_train.shape == (6, 1) and reg.n_outputs == 1
    reg2 = dataset_from_arrays("r", {"x_train": x, "y_train": np.zeros((6, 3))})
    assert reg2.n_outputs == 3 and reg2.y_train.dtype == np.float32
    binary = dataset_from_arrays(
        "b", {"x_train": x, "y_train": np.array([0, 1, 1, 0, 1, 0])}, task="binary"
    )
    assert binary.task == "binary" and binary.y_train.shape == (6, 1) and binary.n_outputs == 1
    with pytest.raises(DatasetError, match="0 or 1"):
        dataset_from_arrays("b", {"x_train": x, "y_train": np.arange(6)}, task="binary")


def test_pickled_object_array_is_refused_naming_the_key() -> None:
    data = _npz(x_train=np.ones((3, 2)), y_train=np.array([1, "a", None], dtype=object))
    with pytest.raises(DatasetError) as info:
        parse_npz(data, max_bytes=MB)
    assert info.value.field == "y_train" and "pickled" in info.value.msg


def test_zip_bomb_is_refused_from_the_zip_directory() -> None:
    buf = io.BytesIO()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (4_000_000, 10)}
    )
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x_train.npy", "w", force_zip64=True) as fp:
            fp.write(header.getvalue())
            zeros = bytes(MB)
            for _ in range(320):  # 320 MB of zeros, a few hundred KB compressed
                fp.write(zeros)
        zf.writestr("y_train.npy", _npy(np.zeros(4_000_000, np.int64)))
    data = buf.getvalue()
    assert len(data) < 2 * MB
    with pytest.raises(DatasetTooLargeError) as info:
        parse_npz(data, max_bytes=4 * MB)
    assert info.value.field == "file" and "decompress" in info.value.msg


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_header_claiming_more_than_the_file_holds_is_refused_before_allocating() -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 100)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x_train.npy", header.getvalue() + bytes(64))
        zf.writestr("y_train.npy", _npy(np.zeros(8, np.int64)))
    with pytest.raises(DatasetError) as info:
        parse_npz(buf.getvalue(), max_bytes=MB)
    assert info.value.field == "x_train" and "more data than the file holds" in info.value.msg


def test_upload_over_the_byte_limit() -> None:
    data = _npz(**_classification(n=2000, d=50))
    with pytest.raises(DatasetTooLargeError) as info:
        parse_npz(data, max_bytes=len(data) - 1)
    assert info.value.value == len(data) and str(len(data) - 1) in info.value.msg


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (b"not a zip at all", "file", "not an .npz"),
        (_npz(x_train=np.ones((3, 2))), "y_train", "missing"),
        (_npz(x_train=np.ones((3, 2)), y_train=np.zeros(3), z=np.ones(1)), "z.npy", "unexpected"),
        (
            _npz(x_train=np.ones((3, 2)), y_train=np.zeros(3), x_val=np.ones((1, 2))),
            "x_val",
            "together",
        ),
    ],
)
def test_archive_structure_errors(data: bytes, field: str, fragment: str) -> None:
    with pytest.raises(DatasetError) as info:
        parse_npz(data, max_bytes=MB)
    assert info.value.field == field and fragment in info.value.msg


ARRAY_CASES = [
    ({"x_train": np.ones(5), "y_train": np.zeros(5, int)}, "x_train", "2-D"),
    ({"x_train": np.ones((5, 2, 2)), "y_train": np.zeros(5, int)}, "x_train", "2-D"),
    ({"x_train": np.array([["a", "b"]]), "y_train": np.zeros(1, int)}, "x_train", "numeric"),
    ({"x_train": np.array([[1.0, np.nan]]), "y_train": np.zeros(1, int)}, "x_train", "NaN"),
    ({"x_train": np.array([[1e39, 0.0]]), "y_train": np.zeros(1, int)}, "x_train", "inf"),
    ({"x_train": np.ones((5, 2)), "y_train": np.zeros(4, int)}, "y_train", "5"),
    ({"x_train": np.ones((3, 2)), "y_train": np.array([0, -1, 2])}, "y_train", ">= 0"),
    ({"x_train": np.ones((3, 2)), "y_train": np.zeros((3, 2), int)}, "y_train", "1-D"),
    ({"x_train": np.ones((0, 2)), "y_train": np.zeros(0, int)}, "x_train", "at least one"),
    (
        {
            "x_train": np.ones((3, 2)),
            "y_train": np.zeros(3, int),
            "x_val": np.ones((2, 3)),
            "y_val": np.zeros(2, int),
        },
        "x_val",
        "features",
    ),
]


@pytest.mark.parametrize(("arrays", "field", "fragment"), ARRAY_CASES)
def test_array_validation_names_the_key(arrays: dict, field: str, fragment: str) -> None:
    parsed = parse_npz(_npz(**arrays), max_bytes=MB)
    with pytest.raises(DatasetError) as info:
        dataset_from_arrays("u", parsed)
    assert info.value.field == field and fragment in info.value.msg


def test_load_and_check_an_upload_by_id() -> None:
    arrays = _classification(n=30)
    del arrays["x_val"], arrays["y_val"]
    store = {"ds_1": _npz(**arrays)}

    def uploaded(uid: str) -> bytes | None:
        return store.get(uid)

    for ref in ({"name": "upload", "id": "ds_1"}, {"id": "ds_1"}):
        ds = load_dataset(ref, data_dir="/x", allow_downloads=False, uploaded=uploaded)
        assert ds.name == "upload:ds_1" and ds.n_train == 30 and ds.n_val == 0
    split = load_dataset(
        {"id": "ds_1", "validation_size": 5, "validation_from": "end"},
        data_dir="/x",
        allow_downloads=False,
        uploaded=uploaded,
    )
    np.testing.assert_array_equal(split.y_val, arrays["y_train"][25:])
    np.testing.assert_array_equal(split.y_train, arrays["y_train"][:25])
    with pytest.raises(DatasetError) as missing:
        load_dataset({"id": "ds_2"}, data_dir="/x", allow_downloads=False, uploaded=uploaded)
    assert missing.value.field == "dataset.id" and missing.value.value == "ds_2"
    with pytest.raises(DatasetError) as bad_id:
        load_dataset({"id": "../etc"}, data_dir="/x", allow_downloads=False, uploaded=uploaded)
    assert bad_id.value.field == "dataset.id"

    summary = dataset_from_arrays("upload:ds_1", parse_npz(store["ds_1"], max_bytes=MB)).summary()
    info = check_dataset(
        {"id": "ds_1", "validation_size": 5},
        data_dir="/x",
        allow_downloads=False,
        uploaded_exists=lambda uid: summary if uid == "ds_1" else None,
    )
    assert (info["n_train"], info["n_val"], info["input_dim"], info["n_outputs"]) == (25, 5, 4, 3)
    assert info["where"] == "upload" and info["params"]["id"] == "ds_1"
    with pytest.raises(DatasetError) as gone:
        check_dataset(
            {"id": "ds_9"}, data_dir="/x", allow_downloads=False, uploaded_exists=lambda uid: False
        )
    assert gone.value.field == "dataset.id"


# --- describe_npz: the API's check, without holding the arrays ----------------------------

VALID_UPLOADS = {
    "multiclass+val": (_classification(), None),
    "regression (n, 3)+val": (
        {
            "x_train": np.ones((6, 2)),
            "y_train": np.arange(18.0).reshape(6, 3),
            "x_val": np.zeros((2, 2)),
            "y_val": np.zeros((2, 3)),
        },
        None,
    ),
    "binary": ({"x_train": np.ones((6, 2)), "y_train": np.array([0, 1, 1, 0, 1, 0])}, "binary"),
    "fortran, big-endian, int x, (n, 1) labels": (
        {
            "x_train": np.asfortranarray(np.arange(40, dtype=">i4").reshape(10, 4)),
            "y_train": np.arange(10).reshape(10, 1) % 7,
        },
        None,
    ),
    "bool x, float labels": (
        {"x_train": np.eye(5, dtype=bool), "y_train": np.array([0.0, 1, 2, 3, 4])},
        "multiclass",
    ),
}


@pytest.mark.parametrize("case", list(VALID_UPLOADS))
@pytest.mark.parametrize("compressed", [False, True])
def test_describe_gives_the_summary_of_the_loaded_dataset(case: str, compressed: bool) -> None:
    arrays, task = VALID_UPLOADS[case]
    data = _npz(compressed, **arrays)
    loaded = dataset_from_arrays("u", parse_npz(data, max_bytes=MB), task).summary()
    assert describe_npz(data, "u", task, max_bytes=MB) == loaded


@pytest.mark.parametrize(("arrays", "field", "fragment"), ARRAY_CASES)
def test_describe_refuses_what_loading_refuses(arrays: dict, field: str, fragment: str) -> None:
    with pytest.raises(DatasetError) as info:
        describe_npz(_npz(**arrays), "u", max_bytes=MB)
    assert info.value.field == field and fragment in info.value.msg


def test_describe_names_the_lowest_bad_row_whatever_the_memory_order() -> None:
    x = np.zeros((3000, 700))  # > one 4 MiB chunk, column-major
    x[2500, 0] = np.nan
    x[7, 699] = np.inf
    for order in (np.ascontiguousarray, np.asfortranarray):
        with pytest.raises(DatasetError) as info:
            describe_npz(
                _npz(x_train=order(x), y_train=np.zeros(3000, int)), "u", max_bytes=64 * MB
            )
        assert info.value.field == "x_train" and info.value.value == 7


def _declaring(shape: tuple[int, ...], data_bytes: int, stored: bool = False) -> bytes:
    """An archive whose x_train header declares ``shape`` (float32) over zeros."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    buf = io.BytesIO()
    kind = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", compression=kind) as zf:
        zf.writestr("x_train.npy", header.getvalue() + bytes(data_bytes))
        zf.writestr("y_train.npy", _npy(np.zeros(shape[0], np.int8)))
    return buf.getvalue()


@pytest.mark.parametrize("reader", [parse_npz, describe_npz])
def test_an_array_declaring_more_elements_than_allowed_is_refused_by_its_header(
    reader: object,
) -> None:
    data = _declaring((1001, 10), 1001 * 10 * 4)
    call = (
        (lambda: parse_npz(data, max_bytes=MB, max_elements=10_000))
        if reader is parse_npz
        else (lambda: describe_npz(data, "u", max_bytes=MB, max_elements=10_000))
    )
    with pytest.raises(DatasetTooLargeError) as info:
        call()
    assert info.value.field == "x_train" and info.value.value == [1001, 10]
    assert "10010 elements" in info.value.msg and "10000" in info.value.msg


def test_the_header_check_comes_before_reading_any_data() -> None:
    # x_train's data is damaged (its CRC no longer matches): reading it is an error.
    good = _declaring((1001, 10), 1001 * 10 * 4, stored=True)
    at = good.index(b"{'descr'") + 200  # past the 128-byte header, inside the zeros
    broken = good[:at] + b"\x01" + good[at + 1 :]
    with pytest.raises(DatasetTooLargeError):
        describe_npz(broken, "u", max_bytes=MB, max_elements=10_000)
    with pytest.raises(DatasetError) as info:
        describe_npz(broken, "u", max_bytes=MB)
    assert info.value.field == "x_train" and "cannot read array" in info.value.msg


def test_data_after_the_declared_array_is_refused() -> None:
    data = _declaring((10, 1), 10 * 4 + 8)
    with pytest.raises(DatasetError) as info:
        describe_npz(data, "u", max_bytes=MB)
    assert info.value.field == "x_train" and "after the array" in info.value.msg


def test_describe_holds_a_few_chunks_not_the_arrays() -> None:
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (200_000, 64)).astype(np.float32)  # 51 MB, compresses ~9x
    data = _npz(True, x_train=x, y_train=rng.integers(0, 10, 200_000))
    del x
    tracemalloc.start()
    try:
        summary = describe_npz(data, "u", max_bytes=len(data))
        _, describe_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        parse_npz(data, max_bytes=len(data))
        _, parse_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary["n_train"] == 200_000 and summary["n_classes"] == 10
    assert parse_peak > 51_000_000  # loading holds the array
    assert describe_peak < 24 * MB  # a 4 MiB chunk, its float32 cast and masks


def test_a_task_override_uses_the_kept_fits_else_reads_the_upload(tmp_path: Path) -> None:
    from app.training.datasets import check_dataset, describe_npz, task_fits

    buf = io.BytesIO()
    np.savez(buf, x_train=np.ones((6, 2), np.float32), y_train=np.array([0, 1, 2, 0, 1, 2]))
    data = buf.getvalue()
    summary = describe_npz(data, "u", max_bytes=len(data))
    kept = {**summary, "tasks": task_fits(data, "u", max_bytes=len(data))}
    reads: list[str] = []

    def uploaded(dataset_id: str) -> bytes:
        reads.append(dataset_id)
        return data

    def check(meta: dict, task: str) -> dict:
        ref = {"name": "upload", "id": "ds_1", "task": task}
        return check_dataset(
            ref,
            data_dir=tmp_path,
            allow_downloads=False,
            uploaded_exists=lambda _: meta,
            uploaded=uploaded,
        )

    assert check(kept, "regression")["n_outputs"] == 1
    with pytest.raises(DatasetError) as kept_error:
        check(kept, "binary")
    assert reads == []  # answered from the fits kept with the upload
    # An upload kept before its fits were recorded: read and checked, with the same answers.
    assert check(summary, "regression")["n_outputs"] == 1
    with pytest.raises(DatasetError) as read_error:
        check(summary, "binary")
    assert reads == ["ds_1", "ds_1"]
    assert kept_error.value.field == read_error.value.field == "dataset.task"
    assert kept_error.value.msg == read_error.value.msg
