"""Job outputs built from the api.md job document: the comparison report (PNG/SVG) and CSV.

The report mirrors the Udacity notebook's comparison plot: the first ``plot_n_batches``
training losses per scheme (mean over repeats, min–max band when there are several), then
validation accuracy per epoch, then the summary table (its text: ``app.jobs.report_text``).
Rendering uses an explicit ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot state);
the same job document always gives the same bytes (fixed SVG id salt, no dates in the
metadata).
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
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from app.jobs.report_text import header, num, short, summary_rows

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
# Titles get an explicit y (set_title(..., y=1.0)): matplotlib then skips its title-placement
# pass over every tick label, which was a third of the render time.
_RC: dict[Any, Any] = {
    "svg.hashsalt": "initlab-report",
    "svg.id": "initlab-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
}

# One (line style, marker) per scheme on top of its colour, so curves that lie on top of each
# other (all zeros and all ones at chance; the best schemes within a point) stay apart.
_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 1)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

# Layout, in inches (the figure is 10 in wide at 100 dpi: 1000 px).
_WIDTH = 10.0
_DPI = 100
_MARGIN_L, _MARGIN_R = 0.8, 0.25
_HEADER = 0.95
_LEGEND_ROW = 0.24
_LOSS_H = 3.5
_ACC_H = 2.3
_GAP = 0.68  # x tick labels + x label + the next panel's title
_TABLE_ROW = 0.24
_BOTTOM = 0.15


@dataclass(frozen=True)
class _Style:
    color: str
    linestyle: Any
    marker: str
    linewidth: float
    zorder: float

    def line(self, markersize: float, markevery: tuple[int, int] | None) -> dict[str, Any]:
        """``Axes.plot`` keywords: hollow markers and a little transparency, so a curve
        under another one still shows."""
        return {
            "color": self.color,
            "linestyle": self.linestyle,
            "linewidth": self.linewidth,
            "marker": self.marker,
            "markersize": markersize,
            "markevery": markevery,
            "markerfacecolor": "none",
            "alpha": 0.9,
            "zorder": self.zorder,
        }


def _style(i: int, n: int) -> _Style:
    """Colour, dash and marker of scheme ``i`` of ``n``; later schemes are drawn thinner and on
    top, so a thick earlier curve still shows around a thin later one lying on it."""
    width = 2.6 - 1.4 * (i / (n - 1)) if n > 1 else 1.6
    return _Style(
        color=_COLORS[i % len(_COLORS)],
        linestyle=_LINESTYLES[i % len(_LINESTYLES)],
        marker=_MARKERS[i % len(_MARKERS)],
        linewidth=round(width, 2),
        zorder=2.0 + i * 0.01,
    )


@dataclass
class SchemeSeries:
    """Everything the report shows for one scheme, aggregated over its repeats."""

    scheme: str
    label: str
    losses: list[np.ndarray] = field(default_factory=list)  # one (n,) float64 per repeat
    val_accuracy: dict[int, list[float]] = field(default_factory=dict)  # epoch -> per repeat
    val_loss: dict[int, list[float]] = field(default_factory=dict)


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
    return np.fromiter((num(v) for v in batch_losses[:n]), dtype=np.float64, count=n)


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
            s.val_accuracy.setdefault(epoch, []).append(num(rec.get("val_accuracy")))
            s.val_loss.setdefault(epoch, []).append(num(rec.get("val_loss")))
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


def _uses_accuracy(job: Mapping[str, Any], series: list[SchemeSeries]) -> bool:
    """Accuracy is the headline metric when any run or summary has one (classification)."""
    for item in job.get("summary") or []:
        if isinstance(item.get("final_val_accuracy"), Mapping) and math.isfinite(
            num(item["final_val_accuracy"].get("mean"))
        ):
            return True
    return any(math.isfinite(v) for s in series for vals in s.val_accuracy.values() for v in vals)


def _legend_columns(labels: list[str], width: float) -> int:
    """As many legend columns as fit in ``width`` inches (9-pt text ≈ 0.075 in a character)."""
    widest = max((len(label) for label in labels), default=1) * 0.075 + 0.75
    return max(1, min(len(labels), int(width // widest)))


@dataclass(frozen=True)
class _Layout:
    """Figure height and the axes rectangles (figure fractions), computed in inches."""

    height: float
    legend: tuple[float, float, float, float]
    loss: tuple[float, float, float, float]
    curve: tuple[float, float, float, float]
    finals: tuple[float, float, float, float]
    table: tuple[float, float, float, float]


def _layout(n_legend_rows: int, n_table_rows: int, finals_label_chars: int) -> _Layout:
    legend_h = n_legend_rows * _LEGEND_ROW + 0.1
    table_h = (n_table_rows + 1) * _TABLE_ROW
    height = _HEADER + legend_h + 0.35 + _LOSS_H + _GAP + 0.05 + _ACC_H + _GAP + table_h + _BOTTOM
    plot_w = _WIDTH - _MARGIN_L - _MARGIN_R

    def rect(left: float, top: float, width: float, h: float) -> tuple[float, float, float, float]:
        return (left / _WIDTH, (height - top - h) / height, width / _WIDTH, h / height)

    top = _HEADER
    legend = rect(_MARGIN_L, top, plot_w, legend_h)
    top += legend_h + 0.35  # the loss panel's title
    loss = rect(_MARGIN_L, top, plot_w, _LOSS_H)
    top += _LOSS_H + _GAP + 0.05
    finals_left = 0.12 + finals_label_chars * 0.068
    finals_w = 3.0
    curve_w = plot_w - finals_w - finals_left - 0.55
    curve = rect(_MARGIN_L, top, curve_w, _ACC_H)
    finals = rect(_MARGIN_L + curve_w + 0.55 + finals_left, top, finals_w, _ACC_H)
    top += _ACC_H + _GAP
    table = rect(_MARGIN_L * 0.5, top, _WIDTH - _MARGIN_L * 0.5 - _MARGIN_R, table_h)
    return _Layout(height, legend, loss, curve, finals, table)


def _markevery(n_points: int, i: int, n_series: int) -> tuple[int, int]:
    """About 8 markers per curve, shifted per scheme so coinciding curves show every marker."""
    step = max(1, n_points // 8)
    return ((i * step) // max(n_series, 1) % step, step)


def _draw_losses(
    ax: Any, series: list[SchemeSeries], styles: list[_Style], n_plot: int, complete: bool
) -> None:
    lo, hi = math.inf, -math.inf
    n_repeats = 1
    for i, (s, st) in enumerate(zip(series, styles, strict=True)):
        if not s.losses:
            continue
        n_repeats = max(n_repeats, len(s.losses))
        mean, low, high = _nanstats(_stack(s.losses))
        x = np.arange(mean.size)
        if len(s.losses) > 1:
            ax.fill_between(x, low, high, color=st.color, alpha=0.13, linewidth=0, zorder=1.0)
        ax.plot(x, mean, **st.line(5, _markevery(mean.size, i, len(series))))
        finite = mean[np.isfinite(mean)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    # Constant schemes (all ones) sit orders of magnitude above the rest: use a log axis then.
    if math.isfinite(lo) and lo > 0 and hi / lo > 100:
        ax.set_yscale("log")
    band = ", band: min–max over repeats" if n_repeats > 1 else ""
    mean_text = "mean over repeats" if n_repeats > 1 else "one run per scheme"
    span = f"all {n_plot}" if complete else f"first {n_plot}"
    ax.set_title(f"Training loss, {span} batches ({mean_text}{band})", fontsize=10, y=1.0)
    ax.set_xlabel("Batches")
    ax.set_ylabel("Loss")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.01)


def _draw_curves(ax: Any, series: list[SchemeSeries], styles: list[_Style], accuracy: bool) -> None:
    for i, (s, st) in enumerate(zip(series, styles, strict=True)):
        per_epoch = s.val_accuracy if accuracy else s.val_loss
        epochs = sorted(per_epoch)
        if not epochs:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = [float(np.nanmean(per_epoch[e])) for e in epochs]
        if len(epochs) > 12:
            ax.plot(epochs, means, **st.line(6, _markevery(len(epochs), i, len(series))))
        else:  # few epochs: shift each scheme a little sideways so equal values stay visible
            shift = 0.12 * (i - (len(series) - 1) / 2) / max(len(series) - 1, 1)
            ax.plot([e + shift for e in epochs], means, **st.line(6, None))
    metric = "accuracy" if accuracy else "loss"
    several = any(len(v) > 1 for s in series for v in s.val_accuracy.values())
    how = "mean over repeats" if several else "one run per scheme"
    shifted = 0 < max((len(s.val_accuracy) for s in series), default=0) <= 12
    ax.set_title(f"Validation {metric} per epoch ({how})", fontsize=10, y=1.0)
    ax.set_xlabel("Epoch (schemes offset sideways)" if shifted else "Epoch")
    ax.set_ylabel(f"Validation {metric}")
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _final_values(s: SchemeSeries, accuracy: bool) -> list[float]:
    """Each finished run's final validation metric, from its last epoch record."""
    source = s.val_accuracy if accuracy else s.val_loss
    if not source:
        return []
    last = max(source)
    return [v for v in source[last] if math.isfinite(v)]


def _draw_finals(
    ax: Any,
    job: Mapping[str, Any],
    series: list[SchemeSeries],
    styles: list[_Style],
    accuracy: bool,
) -> None:
    """One row per scheme: every repeat's final value (dots), the mean (the scheme's marker)
    and the min–max range (a bar), so schemes that overlap in the curves read apart."""
    n = len(series)
    for i, (s, st) in enumerate(zip(series, styles, strict=True)):
        y = n - 1 - i
        values = _final_values(s, accuracy)
        if not values:
            continue
        ax.hlines(y, min(values), max(values), color=st.color, linewidth=2.0, alpha=0.6)
        ax.plot(values, [y] * len(values), "|", color=st.color, markersize=9, alpha=0.8)
        ax.plot(
            [float(np.mean(values))],
            [y],
            marker=st.marker,
            color=st.color,
            markersize=7,
            markerfacecolor="none",
            markeredgewidth=1.6,
            linestyle="none",
        )
    ax.set_yticks(range(n), [short(s.label, 24) for s in reversed(series)], fontsize=8)
    ax.set_ylim(-0.6, n - 0.4)
    metric = "accuracy" if accuracy else "loss"
    ax.set_title(f"Final validation {metric} per run", fontsize=10, y=1.0)
    ax.set_xlabel(f"Validation {metric} (| runs, ○ mean)")
    ax.grid(True, axis="x", alpha=0.3)


def _draw(fig: Figure, job: Mapping[str, Any], layout: _Layout) -> None:
    series = collect_series(job)
    styles = [_style(i, len(series)) for i in range(len(series))]
    accuracy = _uses_accuracy(job, series)
    columns, rows = summary_rows(job, [s.label for s in series], accuracy)
    # The x axis runs to the longest curve of any repeat: the title counts what is drawn.
    longest = max((c.size for s in series for c in s.losses), default=0)
    n_plot = min(plot_n_batches(job), longest) if longest else plot_n_batches(job)

    title, subtitle, small = header(job, len(series))
    fig.text(0.5, 1 - 0.2 / layout.height, title, ha="center", va="top", fontsize=13)
    fig.text(0.5, 1 - 0.47 / layout.height, subtitle, ha="center", va="top", fontsize=10)
    fig.text(
        0.5, 1 - 0.7 / layout.height, small, ha="center", va="top", fontsize=8, color="#666666"
    )

    ax_legend = fig.add_axes(layout.legend)
    ax_legend.axis("off")
    handles = [Line2D([], [], **{**st.line(6, None), "alpha": 1.0}) for st in styles]
    labels = [short(s.label) for s in series]
    if handles:
        ax_legend.legend(
            handles,
            labels,
            loc="center",
            ncol=_legend_columns(labels, layout.legend[2] * _WIDTH),
            frameon=False,
            fontsize=9,
            handlelength=3.2,
            columnspacing=1.6,
        )

    totals = {r.get("total_batches") for r in job.get("runs") or []}
    complete = totals == {n_plot}
    _draw_losses(fig.add_axes(layout.loss), series, styles, n_plot, complete)
    _draw_curves(fig.add_axes(layout.curve), series, styles, accuracy)
    _draw_finals(fig.add_axes(layout.finals), job, series, styles, accuracy)

    ax_table = fig.add_axes(layout.table)
    ax_table.axis("off")
    widths = [max(len(c), *(len(r[k]) for r in rows)) + 2 for k, c in enumerate(columns)]
    table = ax_table.table(
        cellText=rows,
        colLabels=columns,
        colWidths=[w / sum(widths) for w in widths],
        cellLoc="center",
        bbox=Bbox.from_bounds(0.0, 0.0, 1.0, 1.0),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        if row == 0:
            cell.set_facecolor("#eeeeee")
        elif col == 0 and row - 1 < len(styles):
            cell.get_text().set_color(styles[row - 1].color)


def render_report(job: Mapping[str, Any], fmt: ReportFormat = "png") -> bytes:
    """The comparison report of ``job`` (the api.md job document) as PNG or SVG bytes.

    The figure is 1000 px wide; its height follows the number of schemes (legend rows and
    table rows), so the image has no empty band at the bottom.
    """
    if fmt not in REPORT_MEDIA_TYPES:
        raise ValueError(f"fmt must be one of {sorted(REPORT_MEDIA_TYPES)}, got {fmt!r}")
    labels = [
        short(label)
        for label in dict.fromkeys(_scheme_key(run)[1] for run in job.get("runs") or [])
    ]
    summary_rows = len(job.get("summary") or [])
    n_rows = summary_rows or len(labels)
    legend_rows = math.ceil(len(labels) / _legend_columns(labels, _WIDTH - _MARGIN_L - _MARGIN_R))
    finals_chars = max((len(short(label, 24)) for label in labels), default=4)
    layout = _layout(max(legend_rows, 1), max(n_rows, 1), finals_chars)
    buf = io.BytesIO()
    with _RENDER_LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(_WIDTH, layout.height), dpi=_DPI)
        FigureCanvasAgg(fig)
        _draw(fig, job, layout)
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
