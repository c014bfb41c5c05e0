"""A model's other files against a real uvicorn process: ``weights.bin``, ``.npz``, Keras
``.weights.h5`` and one 4 MiB TF.js shard of the ~25M-parameter MLP of bench_models.py (best of
3 with curl, and the API's peak RSS growth while serving each); with node, TF.js's
``tf.loadLayersModel`` of that model from its 25 shards against one ``weights.bin``.

    .venv/bin/python bench/bench_model_files.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_models import BIG, TFJS_DIR, curl_seconds, in_process_seconds  # noqa: E402
from bench_uploads import start_api  # noqa: E402

from app.embedded_redis import EmbeddedRedis  # noqa: E402
from tests.api.test_uploads_processes import MiB, growth_bytes  # noqa: E402


def main() -> None:
    server = EmbeddedRedis(tempfile.mkdtemp(prefix="bench-model-files-")).start()
    proc, base = start_api(ROOT, server.url)
    try:
        model = httpx.post(f"{base}/v1/models", json=BIG, timeout=60).json()
        links = model["links"]
        files = {
            "weights.bin": links["weights_bin"],
            "weights.npz": links["npz"],
            "model.weights.h5": links["keras_weights"],
            "one shard (4 MiB)": links["weights_shards"][0],
        }
        local = in_process_seconds()
        print(f"{model['params']:,} parameters ({model['bytes'] / MiB:.0f} MiB), ", end="")
        print(f"in-process generation {local * 1000:.0f} ms; curl, best of 3:\n")
        print("| file | bytes | GET | API peak RSS growth |")
        print("|---|---|---|---|")
        for name, path in files.items():
            url = base + path
            seconds, grew = growth_bytes(proc.pid, lambda url=url: curl_seconds(url))
            size = int(httpx.head(url).headers["content-length"])
            ms = f"{seconds * 1000:.0f} ms" if seconds is not None else "no curl"
            print(f"| {name} | {size:,} | {ms} | {grew / MiB:.0f} MiB |", flush=True)
        node = shutil.which("node")
        if node and (TFJS_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
            env = {
                **os.environ,
                "INITLAB_URL": base,
                "TFJS_DIR": str(TFJS_DIR),
                "MODEL_JSON": links["model_json"],
            }
            cmd = [node, str(ROOT / "bench" / "tfjs" / "shards.mjs")]
            out, grew = growth_bytes(
                proc.pid, lambda: subprocess.run(cmd, env=env, capture_output=True, text=True)
            )
            if out.returncode:
                raise RuntimeError(f"bench/tfjs/shards.mjs failed:\n{out.stderr}")
            print("\nTF.js 4.22 (node) tf.loadLayersModel, median of 5 ", end="")
            print(f"(API peak RSS growth over all 11 loads: {grew / MiB:.0f} MiB):\n")
            print("| params | as served | the same, one weights.bin |")
            print("|---|---|---|")
            print("\n".join(line for line in out.stdout.splitlines() if line.startswith("|")))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.stop()


if __name__ == "__main__":
    main()
