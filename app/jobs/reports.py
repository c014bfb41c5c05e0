"""Job outputs built from the api.md job document: the comparison report (PNG/SVG) and CSV.

The report mirrors the Udacity notebook's comparison plot: the first ``plot_n_batches``
training losses per scheme (mean over repeats, min–max band when there are several), then
validation accuracy per epoch, then the summary table. Rendering uses an explicit
``matplotlib.figure.Figure`` on the Agg canvas (no pyplot state); the same job document always
gives the same bytes (fixed SVG id salt, no dates in the metadata).
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

ReportFormat = Literal["png", "svg"]
REPORT_MEDIA_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}
DEFAULT_PLOT_N_BATCHES = 100

RUN_COLUMNS = (
    "scheme",
    "label",
    "repeat",
    "seed",
    "status",
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
)
_STAT_FIELDS = ("final_val_accuracy", "final_val_loss", "last_batch_loss")
_STATS = ("mean", "std", "min", "max")
SUMMARY_COLUMNS = (
    "scheme",
    "label",
    *(f"{name}_{stat}" for name in _STAT_FIELDS for stat in _STATS),
    "diverged",
    "seconds",
)

# matplotlib reads rcParams (svg.hashsalt, fonts) while drawing; render one report at a time
# under fixed settings so concurrent requests cannot see each other's temporary values.
_RENDER_LOCK = threading.Lock()
# matplotlib's "tab10", spelled out so the colours never depend on a user's matplotlibrc.
_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_RC: dict[Any, Any] = {
    "svg.hashsalt": "initlab-report",
    "svg.id": "initlab-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
}


@dataclass
class SchemeSeries:
    """Everything the report shows for one scheme, aggregated over its repeats."""

    scheme: str
    label: str
    losses: list[np.ndarray] = field(default_factory=list)  # one (n,) float64 per repeat
    val_accuracy: dict[int, list[float]] = field(default_factory=dict)  # epoch -> per repeat
    val_loss: dict[int, list[float]] = field(default_factory=dict)


def _num(value: Any) -> float:
    """A JSON number (or None / "nan" / "inf" text) as a float; missing → NaN."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def plot_n_batches(job: Mapping[str, Any]) -> int:
    """The number of leading batches the job records exactly (``spec.record.plot_n_batches``)."""
    record = (job.get("spec") or {}).get("record") or {}
    n = record.get("plot_n_batches", DEFAULT_PLOT_N_BATCHES)
    return int(n) if isinstance(n, int) and n > 0 else DEFAULT_PLOT_N_BATCHES


def loss_points(
    batch_losses: Sequence[Any], batch_steps: Sequence[Any] | None = None, limit: int | None = None
) -> np.ndarray:
    """The leading, exactly recorded training losses of a run (index = global batch number).

    ``batch_losses`` is the run's list from the job document and ``batch_steps`` the global
    batch index of each entry: the first ``plot_n_batches`` are exact, the tail is strided.
    The curve keeps the prefix where entry ``i`` is batch ``i`` (all of it without steps).
    """
    n = len(batch_losses) if limit is None else min(len(batch_losses), limit)
    if batch_steps is not None:
        exact = 0
        while exact < n and exact < len(batch_steps) and int(batch_steps[exact]) == exact:
            exact += 1
        n = exact
    return np.fromiter((_num(v) for v in batch_losses[:n]), dtype=np.float64, count=n)


def _scheme_key(run: Mapping[str, Any]) -> tuple[str, str]:
    scheme = run.get("scheme")
    label = run.get("label")
    scheme_text = scheme if isinstance(scheme, str) else str(_cell(scheme))
    return scheme_text, str(label) if label is not None else scheme_text


def collect_series(job: Mapping[str, Any]) -> list[SchemeSeries]:
    """Group the job's runs by scheme, in the order the schemes first appear."""
    limit = plot_n_batches(job)
    series: dict[tuple[str, str], SchemeSeries] = {}
    for run in job.get("runs") or []:
        key = _scheme_key(run)
        s = series.setdefault(key, SchemeSeries(scheme=key[0], label=key[1]))
        losses = loss_points(run.get("batch_losses") or [], run.get("batch_steps"), limit)
        if losses.size:
            s.losses.append(losses)
        for rec in run.get("epochs") or []:
            epoch = int(rec.get("epoch", 0))
            s.val_accuracy.setdefault(epoch, []).append(_num(rec.get("val_accuracy")))
            s.val_loss.setdefault(epoch, []).append(_num(rec.get("val_loss")))
    return list(series.values())


def has_data(job: Mapping[str, Any]) -> bool:
    """True once at least one run has recorded a loss point or an epoch."""
    return any(run.get("batch_losses") or run.get("epochs") for run in job.get("runs") or [])


def _stack(curves: list[np.ndarray]) -> np.ndarray:
    """(repeats, n) with NaN padding for runs that stopped early (diverged, cancelled, running)."""
    n = max(c.size for c in curves)
    out = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        out[i, : c.size] = c
    return out


def _nanstats(stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        finite = np.where(np.isfinite(stacked), stacked, np.nan)
        return np.nanmean(finite, 0), np.nanmin(finite, 0), np.nanmax(finite, 0)


def _fmt_stat(stats: Any, digits: int = 4) -> str:
    if not isinstance(stats, Mapping):
        return "–"
    mean, std = _num(stats.get("mean")), _num(stats.get("std"))
    if math.isnan(mean):
        return "–"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _summary_rows(job: Mapping[str, Any], series: list[SchemeSeries]) -> list[list[str]]:
    repeats = (job.get("spec") or {}).get("repeats")
    rows = []
    for item in job.get("summary") or []:
        diverged = item.get("diverged")
        div_text = "–" if diverged is None else str(diverged)
        if diverged is not None and isinstance(repeats, int):
            div_text = f"{diverged}/{repeats}"
        rows.append(
            [
                str(item.get("label") or item.get("scheme")),
                _fmt_stat(item.get("final_val_accuracy")),
                _fmt_stat(item.get("final_val_loss")),
                _fmt_stat(item.get("last_batch_loss")),
                div_text,
            ]
        )
    if not rows:  # no summary yet (running): one row per scheme so the table still reads
        rows = [[s.label, "–", "–", "–", "–"] for s in series]
    return rows


def _title(job: Mapping[str, Any]) -> str:
    spec = job.get("spec") or {}
    dataset = (spec.get("dataset") or {}).get("name")
    parts = [f"job {job.get('id', '?')}"]
    if dataset:
        parts.append(str(dataset))
    parts.append(str(job.get("status", "?")))
    return " · ".join(parts)


def _draw(fig: Figure, job: Mapping[str, Any]) -> None:
    series = collect_series(job)
    n_batches = plot_n_batches(job)
    rows = _summary_rows(job, series)
    # A fixed layout (inches → figure fractions): constrained layout would draw everything twice.
    height = fig.get_figheight()
    grid = fig.add_gridspec(
        3,
        1,
        height_ratios=[3.0, 2.0, 0.6 + 0.32 * len(rows)],
        left=0.08,
        right=0.97,
        top=1.0 - 0.75 / height,
        bottom=0.15 / height,
        hspace=0.42,
    )

    ax_loss = fig.add_subplot(grid[0])
    lo, hi = math.inf, -math.inf
    for i, s in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        if not s.losses:
            ax_loss.plot([], [], color=color, label=s.label)
            continue
        mean, low, high = _nanstats(_stack(s.losses))
        x = np.arange(mean.size)
        ax_loss.plot(x, mean, color=color, linewidth=1.2, label=s.label)
        if len(s.losses) > 1:
            ax_loss.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)
        finite = mean[np.isfinite(mean)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    # Constant schemes (all ones) sit orders of magnitude above the rest: use a log axis then.
    if math.isfinite(lo) and lo > 0 and hi / lo > 100:
        ax_loss.set_yscale("log")
    ax_loss.set_title(f"Training loss, first {n_batches} batches (mean, min–max over repeats)")
    ax_loss.set_xlabel("Batches")
    ax_loss.set_ylabel("Loss")
    ax_loss.grid(True, alpha=0.3)
    if series:
        ax_loss.legend(loc="upper right", fontsize="small")

    ax_acc = fig.add_subplot(grid[1])
    use_accuracy = any(
        math.isfinite(v) for s in series for vals in s.val_accuracy.values() for v in vals
    )
    for i, s in enumerate(series):
        per_epoch = s.val_accuracy if use_accuracy else s.val_loss
        epochs = sorted(per_epoch)
        if not epochs:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = [float(np.nanmean(per_epoch[e])) for e in epochs]
        ax_acc.plot(epochs, means, marker="o", color=_COLORS[i % len(_COLORS)], label=s.label)
    metric = "accuracy" if use_accuracy else "loss"
    ax_acc.set_title(f"Validation {metric} per epoch (mean over repeats)")
    ax_acc.set_xlabel("Epoch")
    ax_acc.set_ylabel(f"Validation {metric}")
    ax_acc.grid(True, alpha=0.3)
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))

    ax_table = fig.add_subplot(grid[2])
    ax_table.axis("off")
    table = ax_table.table(
        cellText=rows,
        colLabels=["scheme", "final val accuracy", "final val loss", "last batch loss", "diverged"],
        loc="upper center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.3)
    fig.suptitle(_title(job), fontsize=11)


def render_report(job: Mapping[str, Any], fmt: ReportFormat = "png") -> bytes:
    """The comparison report of ``job`` (the api.md job document) as PNG or SVG bytes."""
    if fmt not in REPORT_MEDIA_TYPES:
        raise ValueError(f"fmt must be one of {sorted(REPORT_MEDIA_TYPES)}, got {fmt!r}")
    schemes = {_scheme_key(run) for run in job.get("runs") or []}
    n_rows = max(len(job.get("summary") or []), len(schemes))
    buf = io.BytesIO()
    with _RENDER_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(10.0, 9.0 + 0.3 * n_rows), dpi=100)
        FigureCanvasAgg(fig)
        _draw(fig, job)
        metadata: dict[str, str | None] = (
            {"Date": None, "Creator": "initlab"} if fmt == "svg" else {"Software": "initlab"}
        )
        fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell: empty for missing, shortest round-trip text for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping | list):  # an initializer reference given as an object
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def results_csv(job: Mapping[str, Any], kind: Literal["runs", "summary"] = "runs") -> str:
    """The job's results as CSV.

    ``runs``: one row per run × epoch (a run without a finished epoch yet gets one row with the
    epoch columns empty). ``summary``: one row per scheme over its repeats, in request order.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if kind == "runs":
        writer.writerow(RUN_COLUMNS)
        for run in job.get("runs") or []:
            head = [_cell(run.get(k)) for k in ("scheme", "label", "repeat", "seed", "status")]
            epochs = run.get("epochs") or [{}]
            for rec in epochs:
                writer.writerow(head + [_cell(rec.get(k)) for k in RUN_COLUMNS[5:]])
    elif kind == "summary":
        writer.writerow(SUMMARY_COLUMNS)
        for item in job.get("summary") or []:
            row = [_cell(item.get("scheme")), _cell(item.get("label"))]
            for name in _STAT_FIELDS:
                stats = item.get(name) or {}
                row.extend(_cell(stats.get(stat)) for stat in _STATS)
            row.extend([_cell(item.get("diverged")), _cell(item.get("seconds"))])
            writer.writerow(row)
    else:
        raise ValueError(f"kind must be 'runs' or 'summary', got {kind!r}")
    return out.getvalue()
