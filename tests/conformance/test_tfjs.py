"""TensorFlow.js (``@tensorflow/tfjs`` in node) against a real initlab server.

Runs ``tests/conformance/tfjs/*.test.mjs`` with ``node --test``; installs the pinned packages
from ``package-lock.json`` first when ``node_modules`` is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.conformance, pytest.mark.integration]

TFJS_DIR = Path(__file__).resolve().parent / "tfjs"
NODE = shutil.which("node")


def _install(npm: str) -> None:
    cmd = [npm, "ci" if (TFJS_DIR / "package-lock.json").exists() else "install"]
    done = subprocess.run(
        [*cmd, "--no-audit", "--no-fund"],
        cwd=TFJS_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.skipif(NODE is None, reason="node is not installed (needed for @tensorflow/tfjs)")
def test_tfjs_uses_served_tensors(api_server: str) -> None:
    assert NODE is not None
    if not (TFJS_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("node is installed but npm is not: cannot install @tensorflow/tfjs")
        _install(npm)
    tests = sorted(p.name for p in TFJS_DIR.glob("*.test.mjs"))
    assert tests, "no TF.js test files found"
    done = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", *tests],
        cwd=TFJS_DIR,
        env={**os.environ, "INITLAB_URL": api_server},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, report
    counts = dict(re.findall(r"(tests|pass|fail) (\d+)", report))
    assert counts.get("fail") == "0", report
    assert counts.get("pass") == counts.get("tests") and int(counts["tests"]) >= 4, report
