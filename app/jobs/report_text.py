"""The words and numbers of the comparison report: its header (dataset, model, training,
repeats) and the summary table's cells. Pure Python; ``app.jobs.reports`` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

_ACTIVATIONS = {
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "elu": "ELU",
    "selu": "SELU",
    "gelu": "GELU",
}
_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
LABEL_CHARS = 36  # legend and table cells cut longer labels with "…"


def short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def num(value: Any) -> float:
    """A JSON number (or None / "nan" / "inf" text) as a float; missing → NaN."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _decimals(value: float, significant: int, most: int = 4) -> int:
    """Decimals that show ``value`` with about ``significant`` significant digits (0 to
    ``most``)."""
    magnitude = abs(value)
    if not math.isfinite(magnitude) or magnitude == 0:
        return most
    return min(most, max(0, significant - 1 - math.floor(math.log10(magnitude))))


def _fmt_num(value: float, digits: int = 4, decimals: int | None = None) -> str:
    """A loss with about ``digits`` significant digits (fixed point), or an accuracy
    (``digits=-3``: exactly 3 decimals)."""
    if not math.isfinite(value):
        return "–" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    if digits < 0:
        return f"{value:.{-digits}f}"
    if abs(value) >= 1e6:
        return f"{value:.3g}"
    return f"{value:.{_decimals(value, digits) if decimals is None else decimals}f}"


def _fmt_stat(stats: Any, digits: int = 4, *, single: bool = False) -> str:
    """``mean ± std`` of a summary statistics object (the value alone for a ``single`` run),
    both with the decimals the more precise of the two needs; "–" when missing."""
    if not isinstance(stats, Mapping):
        return "–"
    mean, std = num(stats.get("mean")), num(stats.get("std"))
    if math.isnan(mean):
        return "–"
    if math.isnan(std) or single:
        return _fmt_num(mean, digits)
    if digits < 0:
        return f"{_fmt_num(mean, digits)} ± {_fmt_num(std, digits)}"
    # The std to 2 significant digits, the mean to ``digits``; both with the same decimals.
    decimals = max(_decimals(mean, digits), _decimals(std, 2) if std > 0 else 0)
    return f"{_fmt_num(mean, digits, decimals)} ± {_fmt_num(std, digits, decimals)}"


def _fmt_range(stats: Any, digits: int = 4, *, single: bool = False) -> str:
    """``min–max`` of a summary statistics object; "–" when missing or for a ``single`` run."""
    if single or not isinstance(stats, Mapping):
        return "–"
    low, high = num(stats.get("min")), num(stats.get("max"))
    if math.isnan(low) or math.isnan(high):
        return "–"
    return f"{_fmt_num(low, digits)}–{_fmt_num(high, digits)}"


def summary_rows(
    job: Mapping[str, Any], labels: Sequence[str], accuracy: bool
) -> tuple[list[str], list[list[str]]]:
    """Column labels and one row of text per scheme (request order)."""
    metric = "val accuracy" if accuracy else "val loss"
    columns = [
        "scheme",
        f"final {metric} (mean ± std)",
        "min–max",
        "final val loss" if accuracy else "last batch loss",
        "last batch loss" if accuracy else "diverged",
        "diverged" if accuracy else "s / run",
    ]
    if accuracy:
        columns.append("s / run")
    repeats = (job.get("spec") or {}).get("repeats")
    rows = []
    for item in job.get("summary") or []:
        diverged = item.get("diverged")
        div_text = "–" if diverged is None else str(diverged)
        if diverged is not None and isinstance(repeats, int):
            div_text = f"{diverged}/{repeats}"
        seconds = num(item.get("seconds"))
        sec_text = f"{seconds:.1f}" if math.isfinite(seconds) else "–"
        headline = item.get("final_val_accuracy" if accuracy else "final_val_loss")
        digits = -3 if accuracy else 4
        single = item.get("runs_finished", item.get("runs")) == 1
        row = [
            short(str(item.get("label") or item.get("scheme"))),
            _fmt_stat(headline, digits, single=single),
            _fmt_range(headline, digits, single=single),
        ]
        if accuracy:
            row.append(_fmt_stat(item.get("final_val_loss"), single=single))
        row.extend([_fmt_stat(item.get("last_batch_loss"), single=single), div_text, sec_text])
        rows.append(row)
    if not rows:  # no summary yet (running): one row per scheme so the table still reads
        rows = [[short(label)] + ["–"] * (len(columns) - 1) for label in labels]
    return columns, rows


def _activation(model: Mapping[str, Any]) -> str:
    act = model.get("activation", "relu")
    name = act.get("name") if isinstance(act, Mapping) else act
    text = str(name or "relu")
    return _ACTIVATIONS.get(text.lower(), text)


def _architecture(spec: Mapping[str, Any]) -> str:
    """``784-256-128-10 ReLU`` from the model and the dataset's sizes."""
    model = spec.get("model") or {}
    info = spec.get("dataset_info") or {}
    hidden = [str(h) for h in model.get("hidden_layers") or []]
    out = model.get("output_units") or info.get("n_outputs")
    layers = [str(info["input_dim"])] if info.get("input_dim") else []
    layers += hidden + ([str(out)] if out else [])
    text = "-".join(layers) if layers else "MLP"
    return f"{text} {_activation(model)}"


def _training(spec: Mapping[str, Any]) -> str:
    """``Adam lr 0.001, batch 128, 2 epochs``."""
    training = spec.get("training") or {}
    opt = training.get("optimizer") or {}
    name = str(opt.get("name") or "adam")
    parts = [_OPTIMIZERS.get(name.lower(), name)]
    lr = opt.get("learning_rate")
    if isinstance(lr, int | float):
        parts[0] += f" lr {lr:g}"
    if isinstance(opt.get("momentum"), int | float) and opt["momentum"]:
        parts[0] += f" momentum {opt['momentum']:g}"
    batch = training.get("batch_size")
    if batch == "full":
        parts.append("full batch")
    elif isinstance(batch, int):
        parts.append(f"batch {batch}")
    if isinstance(training.get("steps"), int):
        parts.append(f"{training['steps']} steps")
    elif isinstance(training.get("epochs"), int):
        epochs = training["epochs"]
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    return ", ".join(parts)


def _repeats(job: Mapping[str, Any]) -> str:
    spec = job.get("spec") or {}
    repeats = spec.get("repeats")
    seeds = sorted(
        {int(r["seed"]) for r in job.get("runs") or [] if isinstance(r.get("seed"), int)}
    )
    if not isinstance(repeats, int):
        return ""
    text = f"{repeats} repeat{'s' if repeats != 1 else ''}"
    if seeds:
        first, last = seeds[0], seeds[-1]
        if len(seeds) == 1:
            text += f" (seed {first})"
        elif last - first + 1 == len(seeds):
            text += f" (seeds {first}–{last})"
        else:
            text += f" ({len(seeds)} seeds)"
    return text


def header(job: Mapping[str, Any], n_schemes: int) -> tuple[str, str, str]:
    """Title (dataset and model), subtitle (training and repeats), and the small id line."""
    spec = job.get("spec") or {}
    dataset = (spec.get("dataset") or {}).get("name") or (spec.get("dataset_info") or {}).get(
        "name"
    )
    title = f"{n_schemes} initialization scheme{'s' if n_schemes != 1 else ''}"
    if dataset:
        title += f" on {dataset}"
    title += f": {_architecture(spec)}"
    subtitle = " · ".join(t for t in (_training(spec), _repeats(job)) if t)
    runs = len(job.get("runs") or [])
    small = f"job {job.get('id', '?')} · {job.get('status', '?')} · {runs} runs"
    return title, subtitle, small
