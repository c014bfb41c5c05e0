"""The streamed files of app.models: the ``.npz`` (zip and zip64, read by ``zipfile``,
``numpy.load`` and ``unzip``), the TF.js shards and the Keras ``.weights.h5`` layout; the
same model gives the same bytes in another process. Keras itself reads the ``.weights.h5`` in
tests/conformance/test_keras_models.py."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import app.models.shards as shards_module
from app.initializers import resolve
from app.models import (
    Limits,
    ModelPlan,
    h5_stream,
    iter_weights,
    npz_stream,
    plan_model,
    shard_count,
    shard_stream,
    weights_paths,
)
from app.models.keras_h5 import h5_groups, snake_case
from app.models.layers import LayerType
from app.models.npz import NpzLayout
from app.models.shards import SHARD_BYTES, RecentWeights
from app.models.spec import Layer, Weight

LIMITS = Limits(10**9, 256, 10**9, 10**13, 8)
ROOT = Path(__file__).resolve().parents[2]

MIXED: dict[str, Any] = {
    "input_shape": [12, 10],
    "seed": 7,
    "layers": [
        {"type": "conv1d", "filters": 6, "kernel_size": 3},
        {"type": "batch_normalization"},
        {"type": "lstm", "units": 8, "return_sequences": True},
        {"type": "gru", "units": 4, "return_sequences": True},
        {"type": "simple_rnn", "units": 4},
        {"type": "dense", "units": 5, "name": "head"},
        {"type": "dropout"},
        {"type": "dense", "units": 3, "use_bias": False},
    ],
}
# Kernels of 1.5, 4 and 6 MiB straddling the 4 MiB boundaries, 11.5 MiB in all: 3 shards.
BIG: dict[str, Any] = {
    "input_shape": [768],
    "seed": 2,
    "layers": [
        {"type": "dense", "units": 512},
        {"type": "dense", "units": 2048},
        {"type": "dense", "units": 768},
    ],
}


def plan(spec: dict[str, Any]) -> ModelPlan:
    return plan_model(spec, LIMITS)


def joined(made: tuple[int, Any]) -> bytes:
    length, chunks = made
    data = b"".join(bytes(c) for c in chunks)
    assert len(data) == length
    return data


def test_npz_is_read_by_numpy_zipfile_and_unzip(tmp_path: Path) -> None:
    p = plan(MIXED)
    data = joined(npz_stream(p))
    blob = b"".join(bytes(c) for c in iter_weights(p))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert [i.filename for i in zf.infolist()] == [f"{w.name}.npy" for w in p.weights]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    npz = np.load(io.BytesIO(data), allow_pickle=False)
    offset = 0
    for w in p.weights:
        arr = npz[w.name]
        assert arr.dtype == np.dtype("<f4") and arr.shape == w.shape
        assert arr.tobytes() == blob[offset : offset + 4 * w.size]
        offset += 4 * w.size
    if shutil.which("unzip"):
        (tmp_path / "m.npz").write_bytes(data)
        done = subprocess.run(["unzip", "-t", "m.npz"], cwd=tmp_path, capture_output=True)
        assert done.returncode == 0 and b"No errors detected" in done.stdout, done.stdout


def test_npz_zip64_fields_past_the_limit_are_read_back() -> None:
    p = plan(MIXED)
    normal = joined(npz_stream(p))
    layout = NpzLayout(p, limit=200)  # every member past 200 bytes, so zip64 throughout
    assert layout.zip64 and any(m.zip64 for m in layout.members)
    data = joined((layout.length, layout.chunks()))
    assert len(data) > len(normal)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert [i.file_size for i in infos] == [m.size for m in layout.members]
        assert [i.header_offset for i in infos] == [m.offset for m in layout.members]
        # the zip64 extra field (0x0001) is where zipfile found those sizes and offsets
        assert all(i.extra[:2] == b"\x01\x00" for i in infos if i.file_size >= 200)
    small = np.load(io.BytesIO(normal))
    big = np.load(io.BytesIO(data))
    assert all(small[w.name].tobytes() == big[w.name].tobytes() for w in p.weights)


def test_shards_are_4_mib_slices_of_weights_bin() -> None:
    p = plan(BIG)
    blob = b"".join(bytes(c) for c in iter_weights(p))
    n = shard_count(p)
    assert n == -(-len(blob) // SHARD_BYTES) == 3
    assert weights_paths(p) == [f"group1-shard{i}of3.bin" for i in range(1, 4)]
    pieces = [joined(shard_stream(p, i)) for i in range(1, n + 1)]
    assert [len(x) for x in pieces[:-1]] == [SHARD_BYTES] * (n - 1)
    assert b"".join(pieces) == blob


def test_a_shard_generates_only_the_weights_it_overlaps(monkeypatch: pytest.MonkeyPatch) -> None:
    p = plan(BIG)
    made: list[str] = []
    real = shards_module.weight_values

    def counting(weight: Any) -> np.ndarray:
        made.append(weight.name)
        return real(weight)

    monkeypatch.setattr(shards_module, "weight_values", counting)
    monkeypatch.setattr(shards_module, "RECENT", RecentWeights())
    # MiB: dense/kernel 0-1.5, bias, dense_1/kernel 1.5-5.5, bias, dense_2/kernel 5.5-11.5
    joined(shard_stream(p, 1))
    assert made == ["dense/kernel", "dense/bias", "dense_1/kernel"]
    made.clear()
    joined(shard_stream(p, 3))
    assert made == ["dense_2/kernel", "dense_2/bias"]


def test_shards_wanting_one_weight_at_once_generate_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = plan(BIG)
    made: list[str] = []
    real = shards_module.weight_values
    gate = threading.Barrier(4)

    def counting(weight: Any) -> np.ndarray:
        made.append(weight.name)
        return real(weight)

    monkeypatch.setattr(shards_module, "weight_values", counting)
    recent = RecentWeights()
    got: list[np.ndarray] = []

    def want() -> None:
        gate.wait()
        got.append(recent.get(p.id, 4, p.weights[4]))

    threads = [threading.Thread(target=want) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == ["dense_2/kernel"]
    assert len({id(a) for a in got}) == 1 and not got[0].flags.writeable
    # the newest alone is kept: asked again, dense_1/kernel is not made again; dense_2 is
    recent.get(p.id, 2, p.weights[2])
    recent.get(p.id, 2, p.weights[2])
    recent.get(p.id, 4, p.weights[4])
    assert made == ["dense_2/kernel", "dense_1/kernel", "dense_2/kernel"]


def test_a_model_of_one_shard_keeps_weights_bin() -> None:
    p = plan(MIXED)
    assert shard_count(p) == 1 and weights_paths(p) == ["weights.bin"]


def test_h5_groups_key_layers_by_class_not_name() -> None:
    groups = {path: [w.name for w in weights] for path, _, weights in h5_groups(plan(MIXED))}
    assert groups["layers/conv1d/vars"] == ["conv1d/kernel", "conv1d/bias"]
    assert groups["layers/lstm/vars"] == []
    assert groups["layers/lstm/cell/vars"] == [
        "lstm/kernel",
        "lstm/recurrent_kernel",
        "lstm/bias",
    ]
    assert groups["layers/dense/vars"] == ["head/kernel", "head/bias"]
    assert groups["layers/dense_1/vars"] == ["dense/kernel"]
    assert groups["layers/dropout/vars"] == []


def test_snake_case_is_kerass() -> None:
    # keras/src/utils/naming.py's own examples and the layer classes' keys
    assert snake_case("Conv2DTranspose") == "conv2d_transpose"
    assert snake_case("ReLU") == "re_lu"
    assert snake_case("SimpleRNN") == "simple_rnn"
    assert snake_case("BatchNormalization") == "batch_normalization"


def test_h5_file_holds_each_weight_at_its_keras_path() -> None:
    p = plan(MIXED)
    data = joined(h5_stream(p))
    blob = {w.name: bytes(c) for w, c in zip(p.weights, iter_weights(p), strict=True)}
    with h5py.File(io.BytesIO(data), "r") as h5:
        assert dict(h5.attrs) == {}
        for path, name, weights in h5_groups(p):
            group = h5[path]
            assert dict(group.attrs) == ({"name": name} if name else {})
            assert sorted(group) == [str(i) for i in range(len(weights))]
            for i, w in enumerate(weights):
                ds = group[str(i)]
                assert ds.dtype == np.dtype("<f4") and ds.shape == w.shape
                assert ds[()].tobytes() == blob[w.name]
        assert "vars" in h5


_DIGESTS = """
import hashlib, json, sys
from app.models import Limits, h5_stream, npz_stream, plan_model, shard_stream
spec = json.loads(sys.argv[1])
p = plan_model(spec, Limits(10**9, 256, 10**9, 10**13, 8))
for made in (h5_stream(p), npz_stream(p), shard_stream(p, 2)):
    print(hashlib.sha256(b"".join(bytes(c) for c in made[1])).hexdigest())
"""


def test_same_model_same_bytes_in_another_process() -> None:
    spec = {**BIG, "layers": [*BIG["layers"], *MIXED["layers"][-2:]]}
    spec["layers"][-2] = {"type": "dense", "units": 5}
    p = plan(spec)
    here = [
        hashlib.sha256(joined(made)).hexdigest()
        for made in (h5_stream(p), npz_stream(p), shard_stream(p, 2))
    ]
    env = {"PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"}
    done = subprocess.run(
        [sys.executable, "-c", _DIGESTS, json.dumps(spec)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == here


def test_h5_rule_for_wrappers_by_owner_or_name() -> None:
    """A Bidirectional weight is backward by its owner (``backward_layer``) or a name part
    ``backward_*``; a wrapper weight without an owner is its ``layer``'s (the rule against
    Keras's own files: tests/conformance/test_keras_models.py)."""
    zeros = resolve("zeros")
    inner = {"type": "lstm", "units": 2}
    config = {"type": "bidirectional", "layer": inner, "backward_layer": inner}

    def weight(name: str, owner: tuple[str, ...]) -> Weight:
        return Weight(name, (2, 8), "kernel_initializer", zeros, 0, None, owner)

    kind = LayerType("bidirectional", "Bidirectional", None, ())
    td = LayerType("time_distributed", "TimeDistributed", None, ())
    layers = (
        Layer(
            kind,
            "bi",
            config,
            (),
            (),
            (
                weight("bi/forward_lstm/kernel", ("layer",)),
                weight("bi/backward_lstm/kernel", ("layer",)),
                weight("bi/other/kernel", ("backward_layer",)),
            ),
        ),
        Layer(td, "td", {"layer": {"type": "dense"}}, (), (), (weight("td/kernel", ()),)),
    )
    groups = {path: [w.name for w in ws] for path, _, ws in h5_groups(ModelPlan({}, 0, layers))}
    assert groups == {
        "layers/bidirectional/vars": [],
        "layers/bidirectional/forward_layer/cell/vars": ["bi/forward_lstm/kernel"],
        "layers/bidirectional/backward_layer/cell/vars": [
            "bi/backward_lstm/kernel",
            "bi/other/kernel",
        ],
        "layers/time_distributed/vars": [],
        "layers/time_distributed/layer/vars": ["td/kernel"],
    }
