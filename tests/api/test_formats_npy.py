"""``.npy`` responses read back with the real ``numpy.load`` — bfloat16 included."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import initializers as engine

BODY = {"shape": [3, 5], "initializer": "he_normal", "seed": 4}


def _npy(client: TestClient, dtype: str) -> bytes:
    resp = client.post("/v1/tensors?format=npy", json={**BODY, "dtype": dtype})
    assert resp.status_code == 200, resp.text
    return resp.content


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int32"])
def test_numpy_load_gives_the_requested_dtype_and_values(client: TestClient, dtype: str) -> None:
    body = {**BODY, "initializer": "ones"} if dtype == "int32" else BODY
    resp = client.post("/v1/tensors?format=npy", json={**body, "dtype": dtype})
    loaded = np.load(io.BytesIO(resp.content), allow_pickle=False)
    init = engine.resolve(body["initializer"])
    expected = engine.generate(init, (3, 5), seed=4, dtype=dtype)
    assert loaded.dtype == expected.dtype  # bfloat16 is ml_dtypes.bfloat16, not raw |V2
    assert loaded.tobytes() == expected.tobytes()


def _python(code: str, data: bytes) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        input=data,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def test_bfloat16_npy_in_a_fresh_process_with_ml_dtypes(client: TestClient) -> None:
    data = _npy(client, "bfloat16")
    out = _python(
        """
        import io, sys
        import ml_dtypes, numpy as np
        a = np.load(io.BytesIO(sys.stdin.buffer.read()))
        print(a.dtype, a.shape, a.astype(np.float32).tobytes().hex())
        """,
        data,
    )
    expected = engine.generate(engine.resolve("he_normal"), (3, 5), seed=4, dtype="bfloat16")
    assert out == f"bfloat16 (3, 5) {expected.astype(np.float32).tobytes().hex()}"


def test_bfloat16_npy_without_ml_dtypes_reads_as_documented(client: TestClient) -> None:
    # docs/schemes.md: numpy.load alone raises (no bfloat16 type); the bits after the header
    # are little-endian uint16 whose float32 widening is bits << 16.
    data = _npy(client, "bfloat16")
    out = _python(
        """
        import io, sys
        import numpy as np
        data = sys.stdin.buffer.read()
        try:
            np.load(io.BytesIO(data))
        except ValueError as exc:
            print("refused", "bfloat16" in str(exc))
        f = io.BytesIO(data)
        version = np.lib.format.read_magic(f)
        header_len = {(1, 0): 2, (2, 0): 4}[version]
        length = int.from_bytes(data[8 : 8 + header_len], "little")
        bits = np.frombuffer(data, dtype="<u2", offset=8 + header_len + length)
        widened = (bits.astype(np.uint32) << 16).view(np.float32)
        print("ml_dtypes" in sys.modules, widened.tobytes().hex())
        """,
        data,
    )
    expected = engine.generate(engine.resolve("he_normal"), (3, 5), seed=4, dtype="bfloat16")
    widened = expected.astype(np.float32).tobytes().hex()
    assert out.splitlines() == ["refused True", f"False {widened}"]
    assert expected.dtype == ml_dtypes.bfloat16
