"""Trainer epoch time vs torch 2.13 CPU: 784-256-128-10 ReLU, Adam, batch 128, 55,000 examples.

Synthetic float32 data (timing only). Both sides use the same thread count (``--threads``,
default: all cores), the same shuffled batches (a fresh permutation per epoch, gathered by
index) and the same per-batch work: forward, softmax cross-entropy, backward, Adam step.
torch uses ``Adam(fused=True)`` (supported on CPU since 2.4). Our figure is the epoch
``seconds`` ``train_run`` itself reports (training only: no validation split, diagnostics off).

    .venv/bin/python bench/bench_trainer.py [--epochs 3] [--threads 2] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

N, D, K, BATCH = 55_000, 784, 10, 128
HIDDEN = (256, 128)


def _data(seed: int = 0) -> tuple:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, K, size=N).astype(np.int64)
    return x, y


class _Quiet:
    def should_stop(self) -> bool:
        return False

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        pass

    def on_epoch(self, record: dict) -> None:
        pass

    def on_diagnostics(self, when: str, layers: list) -> None:
        pass


def bench_numpy(epochs: int) -> list[float]:
    import numpy as np

    from app.training import RunSpec, train_run
    from app.training.datasets import Dataset

    x, y = _data()
    data = Dataset(
        "synthetic", "multiclass", x, y, np.zeros((0, D), np.float32), np.zeros(0, np.int64), K
    )
    spec = RunSpec.from_dict(
        model={"hidden_layers": list(HIDDEN), "activation": "relu"},
        training={"optimizer": {"name": "adam", "learning_rate": 0.001},
                  "batch_size": BATCH, "epochs": epochs},
        record={"diagnostics": False},
        kernel_initializer="he_normal",
        seed=0,
    )
    result = train_run(spec, data, _Quiet())
    assert result.status == "succeeded", result.status
    return [e["seconds"] for e in result.epochs]


def bench_torch(epochs: int, threads: int) -> tuple[list[float], str]:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x_np, y_np = _data()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    model = torch.nn.Sequential(
        torch.nn.Linear(D, HIDDEN[0]), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU(),
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2, help="epochs per round and side")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (noise control)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--write", action="store_true", help="write bench/results/trainer.md")
    args = ap.parse_args()
    # NumPy's OpenBLAS reads its thread count at import: set it before anything imports numpy.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    ours: list[float] = []
    theirs: list[float] = []
    mode = ""
    for _ in range(args.rounds):  # alternate so that background load hits both sides alike
        ours += bench_numpy(args.epochs)
        t, mode = bench_torch(args.epochs, args.threads)
        theirs += t
    import numpy as np
    import torch

    def cell(ts: list[float]) -> str:
        return f"{min(ts):.3f} | {statistics.median(ts):.3f} | {max(ts):.3f}"

    best_ours, best_torch = min(ours), min(theirs)
    lines = [
        "# Trainer benchmark",
        "",
        f"784-256-128-10 ReLU, Adam lr 1e-3, batch 128, {N:,} synthetic float32 examples "
        f"({-(-N // BATCH)} batches per epoch); {args.rounds} alternating rounds of "
        f"{args.epochs} epochs per side; {args.threads} thread(s) on both sides "
        f"(OpenBLAS / torch intra-op).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared, so best-of is the "
        f"figure; the median shows the noise); NumPy {np.__version__}, torch "
        f"{torch.__version__} (Adam {mode}).",
        "",
        "| trainer | best epoch s | median | worst |",
        "|---|---|---|---|",
        f"| initlab NumPy | {cell(ours)} |",
        f"| torch CPU | {cell(theirs)} |",
        "",
        f"Best-of ratio initlab / torch: {best_ours / best_torch:.2f}; median ratio "
        f"{statistics.median(ours) / statistics.median(theirs):.2f}.",
        "",
        f"Run: `.venv/bin/python bench/bench_trainer.py --threads {args.threads} --write`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        out = Path(__file__).resolve().parent / "results" / "trainer.md"
        with out.open("a" if out.exists() and args.threads != (os.cpu_count() or 1) else "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
