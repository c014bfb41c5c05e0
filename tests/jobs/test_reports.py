"""The comparison report (PNG/SVG) and the CSV exports, built from an api.md job document."""

from __future__ import annotations

import copy
import csv
import io
import math
import xml.etree.ElementTree as ET
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from app.jobs.reports import (
    RUN_COLUMNS,
    SUMMARY_COLUMNS,
    collect_series,
    has_data,
    loss_points,
    render_report,
    results_csv,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCHEMES = [("zeros", "all zeros"), ("uniform", "uniform [0,1)"), ("he_normal", "He normal")]


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def make_job(*, repeats: int = 2, n_batches: int = 60, plot_n: int = 40) -> dict[str, Any]:
    """A finished 3-scheme job as JobStore.get_job returns it (one run diverges)."""
    rng = np.random.default_rng(3)
    runs, summary = [], []
    for s_index, (scheme, label) in enumerate(SCHEMES):
        finals, val_losses, last = [], [], []
        for repeat in range(repeats):
            diverged = scheme == "uniform" and repeat == 1
            start = [2.3, 40.0, 2.5][s_index]
            losses: list[Any] = [
                float(start * math.exp(-i / 30) + 0.05 * rng.random()) for i in range(n_batches)
            ]
            # The store keeps the first plot_n batches exactly, then every 2nd batch.
            steps = [*range(plot_n), *range(plot_n, n_batches, 2)]
            losses = [losses[i] for i in steps]
            if diverged:
                losses, steps = [*losses[:25], None], list(range(26))
            epochs = []
            for epoch in (1, 2):
                if diverged and epoch == 2:
                    break
                acc = [0.11, 0.6, 0.9][s_index] + 0.02 * epoch + 0.01 * repeat
                epochs.append(
                    {
                        "epoch": epoch,
                        "train_loss": 1.0 / epoch,
                        "train_accuracy": acc,
                        "val_loss": 1.1 / epoch,
                        "val_accuracy": acc - 0.01,
                        "seconds": 0.5,
                    }
                )
            if not diverged:
                finals.append(epochs[-1]["val_accuracy"])
                val_losses.append(epochs[-1]["val_loss"])
                last.append(losses[-1])
            runs.append(
                {
                    "scheme": scheme,
                    "label": label,
                    "repeat": repeat,
                    "seed": 1000 + repeat,
                    "status": "diverged" if diverged else "succeeded",
                    "epoch": len(epochs),
                    "batch": steps[-1] + 1,
                    "batch_losses": losses,
                    "batch_steps": steps,
                    "epochs": epochs,
                    "diagnostics": {},
                    "diverged": diverged,
                }
            )
        summary.append(
            {
                "scheme": scheme,
                "label": label,
                "final_val_accuracy": _stats(finals),
                "final_val_loss": _stats(val_losses),
                "last_batch_loss": _stats(last),
                "diverged": repeats - len(finals),
                "seconds": 1.0 * repeats,
            }
        )
    return {
        "id": "job-0123456789ab",
        "status": "succeeded",
        "created_at": "2024-01-01T00:00:00Z",
        "started_at": "2024-01-01T00:00:01Z",
        "finished_at": "2024-01-01T00:00:09Z",
        "progress": {
            "runs_total": len(runs),
            "runs_done": len(runs),
            "fraction": 1.0,
            "eta_seconds": 0,
        },
        "spec": {
            "dataset": {"name": "circles"},
            "dataset_info": {"name": "circles", "input_dim": 2, "n_outputs": 1},
            "model": {"hidden_layers": [10, 5], "activation": "relu"},
            "training": {
                "optimizer": {"name": "sgd", "learning_rate": 0.01},
                "batch_size": "full",
                "steps": None,
                "epochs": 2,
            },
            "repeats": repeats,
            "schemes": [{"label": lab, "initializer": sch} for sch, lab in SCHEMES],
            "record": {"plot_n_batches": plot_n},
        },
        "runs": runs,
        "summary": summary,
        "error": None,
    }


def test_png_report_decodes_to_an_image_of_the_figure_size() -> None:
    data = render_report(make_job(), "png")
    assert data.startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert image.ndim == 3 and image.shape[2] == 4
    assert image.shape[0] > 800 and image.shape[1] == 1000
    # Not a blank canvas: curves, legend and table put many colours on it.
    assert len(np.unique(image.reshape(-1, 4), axis=0)) > 50


def test_svg_report_is_xml_naming_every_scheme_and_the_table() -> None:
    data = render_report(make_job(), "svg")
    root = ET.fromstring(data)
    assert root.tag.endswith("svg")
    text = data.decode()
    # Text is drawn as glyph paths; matplotlib keeps each string as an XML comment.
    for _, label in SCHEMES:
        assert f"<!-- {label} -->" in text
    assert "<!-- final val accuracy (mean ± std) -->" in text
    assert "<!-- 1/2 -->" in text  # the diverged count of uniform [0,1)


def test_header_names_dataset_model_training_and_repeats_then_the_id() -> None:
    text = render_report(make_job(), "svg").decode()
    assert "<!-- 3 initialization schemes on circles: 2-10-5-1 ReLU -->" in text
    assert "<!-- SGD lr 0.01, full batch, 2 epochs · 2 repeats (seeds 1000–1001) -->" in text
    assert "<!-- job job-0123456789ab · succeeded · 6 runs -->" in text
    assert "job job-" not in text.split("initialization schemes")[0]  # no "job job_…" title


def test_table_has_min_max_and_seconds_per_run() -> None:
    job = make_job()
    text = render_report(job, "svg").decode()
    for column in ("min–max", "s / run", "final val loss", "last batch loss", "diverged"):
        assert f"<!-- {column} -->" in text
    acc = job["summary"][2]["final_val_accuracy"]
    assert f"<!-- {acc['min']:.3f}–{acc['max']:.3f} -->" in text
    assert f"<!-- {acc['mean']:.3f} ± {acc['std']:.3f} -->" in text
    assert f"<!-- {job['summary'][0]['seconds']:.1f} -->" in text


def test_single_run_schemes_show_the_value_without_a_spread() -> None:
    job = make_job(repeats=1)
    for item in job["summary"]:
        item["runs_finished"] = 1
    text = render_report(job, "svg").decode()
    he = job["summary"][2]["final_val_accuracy"]["mean"]
    assert f"<!-- {he:.3f} -->" in text and " ± 0.000 -->" not in text


def _content_rows(png: bytes) -> tuple[int, int]:
    """(height, index of the last row that is not plain white)."""
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    ink = (image[..., :3] < 0.97).any(axis=(1, 2))
    return image.shape[0], int(np.nonzero(ink)[0][-1])


@pytest.mark.parametrize("n_schemes", [1, 3, 12])
def test_figure_height_follows_the_rows_without_an_empty_band(n_schemes: int) -> None:
    job = make_job()
    runs, summary = job["runs"], job["summary"]
    job["runs"] = [dict(runs[i % len(runs)], label=f"scheme {i}") for i in range(2 * n_schemes)]
    for i, run in enumerate(job["runs"]):
        run["scheme"], run["repeat"] = i // 2, i % 2
    job["summary"] = [
        dict(summary[i % len(summary)], label=f"scheme {i}", scheme=i) for i in range(n_schemes)
    ]
    height, last_ink = _content_rows(render_report(job, "png"))
    assert height - last_ink < 40  # the table ends just above the bottom edge
    if n_schemes == 12:
        small_height, _ = _content_rows(render_report(make_job(), "png"))
        assert height > small_height + 9 * 20  # about one table row (24 px) per scheme


def test_schemes_get_distinct_line_styles_and_markers() -> None:
    from app.jobs.reports import _style

    styles = [_style(i, 7) for i in range(7)]
    assert len({(str(s.linestyle), s.marker) for s in styles}) == 7
    assert len({s.marker for s in styles}) == 7
    # Later schemes are drawn on top and thinner, so an earlier curve shows around them.
    assert [s.zorder for s in styles] == sorted(s.zorder for s in styles)
    assert styles[0].linewidth > styles[-1].linewidth


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_same_job_gives_the_same_bytes(fmt: str) -> None:
    job = make_job()
    first = render_report(job, fmt)  # type: ignore[arg-type]
    assert render_report(copy.deepcopy(job), fmt) == first  # type: ignore[arg-type]
    changed = make_job()
    changed["runs"][0]["batch_losses"][0] = 9.0
    assert render_report(changed, fmt) != first  # type: ignore[arg-type]


def test_report_of_a_running_job_without_summary_renders() -> None:
    job = make_job()
    job["status"], job["summary"] = "running", []
    for run in job["runs"][3:]:
        run.update(status="queued", batch_losses=[], batch_steps=[], epochs=[])
    assert has_data(job)
    assert render_report(job, "png").startswith(PNG_SIGNATURE)
    svg = render_report(job, "svg").decode()
    assert "<!-- He normal -->" in svg


def test_has_data_is_false_before_any_point() -> None:
    job = make_job()
    for run in job["runs"]:
        run.update(batch_losses=[], batch_steps=[], epochs=[])
    assert not has_data(job)


def test_loss_curves_keep_the_first_plot_n_batches_and_average_repeats() -> None:
    job = make_job(n_batches=60, plot_n=40)
    series = collect_series(job)
    assert [s.label for s in series] == [label for _, label in SCHEMES]
    assert [len(s.losses) for s in series] == [2, 2, 2]
    assert series[0].losses[0].size == 40
    assert series[1].losses[1].size == 26  # the diverged run stops at its NaN
    assert math.isnan(series[1].losses[1][-1])
    assert series[2].val_accuracy[2] == pytest.approx([0.93, 0.94])


def test_loss_points_keep_only_the_exact_prefix_of_a_strided_record() -> None:
    losses = [1.0, 0.5, 0.25, 0.1, 0.05]
    assert loss_points(losses, [0, 1, 2, 10, 20]).tolist() == [1.0, 0.5, 0.25]
    assert loss_points(losses, [0, 1, 2, 3, 4], limit=4).tolist() == [1.0, 0.5, 0.25, 0.1]
    assert loss_points(losses).tolist() == losses
    with_gap = loss_points([3.0, None, "nan"], limit=2)
    assert with_gap[0] == 3.0 and math.isnan(with_gap[1]) and with_gap.size == 2


def test_runs_csv_has_one_row_per_run_and_epoch() -> None:
    job = make_job()
    rows = list(csv.DictReader(io.StringIO(results_csv(job))))
    assert tuple(rows[0].keys()) == RUN_COLUMNS
    # 3 schemes × 2 repeats × 2 epochs, minus the diverged run's missing epoch 2
    assert len(rows) == 11
    first = rows[0]
    assert first["scheme"] == "zeros" and first["label"] == "all zeros"
    assert first["repeat"] == "0" and first["seed"] == "1000" and first["epoch"] == "1"
    assert float(first["val_accuracy"]) == job["runs"][0]["epochs"][0]["val_accuracy"]
    diverged = [r for r in rows if r["status"] == "diverged"]
    assert [r["epoch"] for r in diverged] == ["1"]


def test_runs_csv_lists_runs_without_epochs_with_empty_cells() -> None:
    job = make_job()
    job["runs"][0]["epochs"] = []
    rows = list(csv.DictReader(io.StringIO(results_csv(job))))
    assert rows[0]["scheme"] == "zeros" and rows[0]["epoch"] == "" and rows[0]["val_loss"] == ""


def test_summary_csv_has_one_row_per_scheme_in_request_order() -> None:
    job = make_job()
    rows = list(csv.DictReader(io.StringIO(results_csv(job, "summary"))))
    assert tuple(rows[0].keys()) == SUMMARY_COLUMNS
    assert [r["label"] for r in rows] == [label for _, label in SCHEMES]
    assert [r["diverged"] for r in rows] == ["0", "1", "0"]
    expected = job["summary"][2]["final_val_accuracy"]["mean"]
    assert float(rows[2]["final_val_accuracy_mean"]) == expected


def test_unknown_format_and_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="fmt"):
        render_report(make_job(), "gif")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        results_csv(make_job(), "everything")  # type: ignore[arg-type]


def _loss_title(svg: bytes) -> str:
    """The loss panel's title (SVG text is drawn as paths, each preceded by its text)."""
    comments = [c.split(" -->")[0] for c in svg.decode().split("<!-- ")[1:]]
    return next(c for c in comments if c.startswith("Training loss"))


def test_loss_title_counts_the_batches_drawn_when_the_first_repeat_diverged_early() -> None:
    job = make_job(repeats=2, n_batches=29, plot_n=29)
    job["spec"]["record"]["plot_n_batches"] = 50
    for run in job["runs"]:
        run["total_batches"] = 29
    for first in job["runs"][::2]:  # repeat 0 of every scheme diverges after 5 batches
        first["batch_losses"] = [*first["batch_losses"][:4], None]
        first["batch_steps"], first["status"] = [*range(5)], "diverged"
    series = collect_series(job)
    assert all(s.losses[0].size == 5 for s in series) and series[0].losses[1].size == 29
    title = _loss_title(render_report(job, "svg"))
    assert title.startswith("Training loss, all 29 batches"), title
    # Shorter records (a running job): the title gives the drawn length too.
    for run in job["runs"]:
        run["total_batches"] = 400
    assert _loss_title(render_report(job, "svg")).startswith("Training loss, first 29 batches")
