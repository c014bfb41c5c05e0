"""Trainer epoch time vs torch 2.13 CPU: 784-256-128-10 ReLU, Adam, batch 128, 20,000 examples.

The first 20,000 Fashion-MNIST training images (``--dataset synthetic``: random float32 data of
the same shape, where the files are missing). Both sides use the same thread count
(``--threads``, default: all cores), the same shuffled batches (a fresh permutation per epoch,
gathered by index) and the same per-batch work: forward, softmax cross-entropy, backward, Adam
step. torch uses ``Adam(fused=True)`` (supported on CPU since 2.4). Our figure is the epoch
``seconds`` ``train_run`` itself reports (training only: no validation split, diagnostics off).
Each round also runs ours with diagnostics on (the default) and times what they cost per epoch:
the ``layer_diagnostics`` call the loop makes after each epoch's record.

    .venv/bin/python bench/bench_trainer.py [--epochs 3] [--rounds 5] [--threads 1,2] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

N, D, K, BATCH = 20_000, 784, 10, 128
HIDDEN = (256, 128)
DATASET = "fashion-mnist"


def _data(seed: int = 0) -> tuple:
    import numpy as np

    if DATASET == "fashion-mnist":
        from app.config import get_settings
        from app.training.datasets import load_dataset

        ds = load_dataset(
            {"name": "fashion-mnist", "train_size": N, "validation_size": 0},
            data_dir=get_settings().data_dir,
            allow_downloads=False,
        )
        return np.ascontiguousarray(ds.x_train, np.float32), ds.y_train.astype(np.int64)
    rng = np.random.default_rng(seed)
    x = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, K, size=N).astype(np.int64)
    return x, y


class _DiagnosticsClock:
    """A reporter timing each epoch's diagnostics: from ``on_epoch`` (the loop computes them
    right after) to ``on_diagnostics``."""

    def __init__(self) -> None:
        self.t_epoch = 0.0
        self.seconds: list[float] = []

    def should_stop(self) -> bool:
        return False

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        pass

    def on_epoch(self, record: dict) -> None:
        self.t_epoch = time.perf_counter()

    def on_diagnostics(self, when: str, layers: list[dict]) -> None:
        if when != "init":
            self.seconds.append(time.perf_counter() - self.t_epoch)


def bench_numpy(epochs: int, diagnostics: bool = False) -> tuple[list[float], list[float]]:
    """Epoch seconds, and with ``diagnostics`` the seconds each epoch's diagnostics took."""
    import numpy as np

    from app.jobs.runplan import run_spec_from_dict
    from app.training import train_run
    from app.training.datasets import Dataset

    x, y = _data()
    data = Dataset(
        "bench", "multiclass", x, y, np.zeros((0, D), np.float32), np.zeros(0, np.int64), K
    )
    spec = run_spec_from_dict(
        model={"hidden_layers": list(HIDDEN), "activation": "relu"},
        training={
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "batch_size": BATCH,
            "epochs": epochs,
        },
        record={"diagnostics": diagnostics},
        kernel_initializer="he_normal",
        seed=0,
    )
    clock = _DiagnosticsClock()
    result = train_run(spec, data, clock)
    assert result.status == "succeeded", result.status
    # An epoch's record is taken before its diagnostics: the epoch's cost is both.
    return [e["seconds"] for e in result.epochs], clock.seconds


def bench_torch(epochs: int, threads: int) -> tuple[list[float], str]:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x_np, y_np = _data()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    model = torch.nn.Sequential(
        torch.nn.Linear(D, HIDDEN[0]),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[0], HIDDEN[1]),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[1], K),
    )
    try:
        opt = torch.optim.Adam(model.parameters(), lr=0.001, fused=True)
        mode = "fused=True"
    except (RuntimeError, ValueError):
        opt = torch.optim.Adam(model.parameters(), lr=0.001, foreach=True)
        mode = "foreach=True (fused unsupported on this CPU build)"
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    times = []
    per_epoch = -(-N // BATCH)
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(N))
        for b in range(per_epoch):
            idx = order[b * BATCH : (b + 1) * BATCH]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times, mode


def _measure(epochs: int, rounds: int, threads: int) -> dict:
    """One thread setting (runs in its own process: BLAS reads its thread count at import)."""
    ours: list[float] = []
    theirs: list[float] = []
    ratios: list[float] = []  # per round: our best epoch / torch's best epoch
    diag: list[float] = []  # per round: median diagnostics seconds / median epoch seconds
    mode = ""
    for _ in range(rounds):  # alternate so that background load hits both sides alike
        mine, _ = bench_numpy(epochs)
        t, mode = bench_torch(epochs, threads)
        with_diag, diag_seconds = bench_numpy(epochs, diagnostics=True)
        ours += mine
        theirs += t
        ratios.append(min(mine) / min(t))
        diag.append(statistics.median(diag_seconds) / statistics.median(with_diag))
    import numpy as np
    import torch

    return {
        "threads": threads,
        "ours": ours,
        "torch": theirs,
        "ratios": ratios,
        "diagnostics": diag,
        "mode": mode,
        "numpy": np.__version__,
        "torch_version": torch.__version__,
    }


def _fmt(values: list[float], pct: bool = False) -> str:
    return ", ".join(f"{100 * v:.1f} %" if pct else f"{v:.2f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per round and side")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (noise control)")
    ap.add_argument("--dataset", choices=["fashion-mnist", "synthetic"], default=DATASET)
    ap.add_argument(
        "--threads",
        default=f"1,{os.cpu_count() or 1}",
        help="comma-separated thread counts, each measured in a fresh process",
    )
    ap.add_argument("--write", action="store_true", help="write bench/results/trainer.md")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    if args.child:
        sys.path.insert(0, str(root))
        globals()["DATASET"] = args.dataset
        print(json.dumps(_measure(args.epochs, args.rounds, args.child)))
        return

    results = []
    for threads in sorted({int(t) for t in args.threads.split(",")}):
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        # Idle OpenBLAS threads sleep after ~2^4 cycles instead of spinning (the default spin
        # starves every other thread on a busy machine: epochs 5-10x slower). The workers
        # should run with the same setting.
        env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(threads),
                "--epochs",
                str(args.epochs),
                "--rounds",
                str(args.rounds),
                "--dataset",
                args.dataset,
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=root,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))

    first = results[0]
    lines = [
        "# Trainer benchmark",
        "",
        f"784-256-128-10 ReLU, Adam lr 1e-3, batch 128, {N:,} {args.dataset} examples "
        f"({-(-N // BATCH)} batches per epoch, shuffled, gathered by index on both sides); "
        f"{args.rounds} alternating rounds of {args.epochs} epochs per side and thread count; "
        "the same thread count on both sides (our row-block and optimizer threads over "
        "single-threaded OpenBLAS / torch intra-op threads); `OPENBLAS_THREAD_TIMEOUT="
        f"{os.environ.get('OPENBLAS_THREAD_TIMEOUT', '4')}` (idle BLAS threads sleep instead of "
        "spinning).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other work "
        f"(load average {os.getloadavg()[0]:.1f} at the end), so the best epoch is the figure "
        "and the median shows the noise. "
        f"NumPy {first['numpy']}, torch {first['torch_version']} (Adam {first['mode']}).",
        "",
        "| threads | trainer | best epoch s | median | worst |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for name, key in (("initlab NumPy", "ours"), ("torch CPU", "torch")):
            ts = r[key]
            lines.append(
                f"| {r['threads']} | {name} | {min(ts):.3f} | {statistics.median(ts):.3f} "
                f"| {max(ts):.3f} |"
            )
    lines.append("")
    for r in results:
        lines.append(
            f"- {r['threads']} thread(s): best-of ratio initlab / torch "
            f"{min(r['ours']) / min(r['torch']):.2f}, median ratio "
            f"{statistics.median(r['ours']) / statistics.median(r['torch']):.2f}; per round "
            f"(best epoch / best epoch, side by side) {_fmt(r['ratios'])}, median "
            f"{statistics.median(r['ratios']):.2f}; diagnostics (on by default) cost "
            f"{_fmt(r['diagnostics'], pct=True)} of an epoch per round, median "
            f"{100 * statistics.median(r['diagnostics']):.1f} %."
        )
    lines += ["", "Run: `.venv/bin/python bench/bench_trainer.py --write`", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        (root / "bench" / "results" / "trainer.md").write_text(text)


if __name__ == "__main__":
    main()
