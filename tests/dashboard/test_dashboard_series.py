"""The dashboard's chart data functions (app/dashboard/static/js/series.js), run in node:
TensorBoard's de-biased EMA with NaN/inf passed through, aggregation over repeats, wall-time
interpolation, and min/max downsampling that keeps a one-step spike; and the charts' numbers
(util.js ``chartNumber``)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest

from app.api.routes.dashboard import STATIC_DIR

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_series(expr: str, script_name: str = "series.js") -> object:
    """Evaluate ``expr`` (with ``script_name``, series.js by default, imported as ``s``) in
    node; its JSON result."""
    module = (STATIC_DIR / "js" / script_name).as_uri()
    script = (
        f"const s = await import({json.dumps(module)});\n"
        "const enc = (v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);\n"
        f"const out = await ({expr});\n"
        "process.stdout.write(JSON.stringify(out, (k, v) => (ArrayBuffer.isView(v) ? "
        "Array.from(v, enc) : Array.isArray(v) ? v.map(enc) : enc(v))));\n"
    )
    done = subprocess.run(
        [str(NODE), "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def tensorboard_ema(values: list[float | None], weight: float) -> list[float | str | None]:
    """TensorBoard's scalar smoothing (``classicSmoothing`` in tensorboard/webapp/widgets/
    line_chart_v2/data_transformer.ts): de-biased EMA; non-finite values pass through."""
    out: list[float | str | None] = []
    last, n = 0.0, 0
    for y in values:
        if y is None or not math.isfinite(y):
            out.append(
                None if y is None else str(y).replace("inf", "Infinity").replace("nan", "NaN")
            )
            continue
        last = last * weight + (1 - weight) * y
        n += 1
        out.append(last / (1 - weight**n))
    return out


def test_ema_is_tensorboards_debiased_average_passing_non_finite_values_through() -> None:
    values = [1.0, 2.0, None, 4.0, math.inf, 3.0, 0.5]
    js_values = "[1, 2, null, 4, Infinity, 3, 0.5]"
    for weight in (0.0, 0.6, 0.99):
        got = run_series(f"s.ema({js_values}, {weight})")
        want = tensorboard_ema(values, weight)
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            if isinstance(w, float):
                assert g == pytest.approx(w, rel=1e-12)
            else:
                assert g == w
    # De-biased: the first smoothed point is the first value, whatever the weight.
    assert run_series("s.ema([NaN, 5], 0.9)") == ["NaN", 5]


def test_aggregate_counts_only_finite_values_over_the_repeats() -> None:
    got = run_series("s.aggregate([[1, null, 3], [3, 5, Infinity]], 3)")
    assert got == {"mean": [2, 5, 3], "min": [1, 5, 3], "max": [3, 5, 3]}


def test_wall_times_interpolate_between_anchors_and_extrapolate_at_the_last_rate() -> None:
    got = run_series("s.wallTimes([0, 5, 10, 15, 20], [[10, 2], [20, 6]])")
    assert got == pytest.approx([0, 1, 2, 4, 6])
    assert run_series("s.wallTimes([30], [[10, 3]])") == pytest.approx([9])


def test_downsampling_keeps_every_spike_and_bounds_the_point_count() -> None:
    n = 20_000
    expr = (
        f"(() => {{ const xs = Array.from({{length: {n}}}, (_, i) => i);"
        f" const ys = xs.map((i) => (i === 12345 ? 1000 : i === 777 ? -50 : Math.sin(i / 100)));"
        f" const flat = xs.map(() => 1);"
        f" const [dx, dy, df] = s.downsample([xs, ys, flat], 500);"
        f" return {{n: dx.length, max: Math.max(...dy), min: Math.min(...dy),"
        f" sorted: dx.every((v, i) => i === 0 || v >= dx[i - 1]), flat: new Set(df).size,"
        f" first: dx[0], last: dx[dx.length - 1]}}; }})()"
    )
    got = run_series(expr)
    assert isinstance(got, dict)
    assert got["n"] <= 1000
    assert got["max"] == 1000 and got["min"] == -50  # both one-step spikes survive
    assert got["sorted"] and got["flat"] == 1
    assert got["first"] == 0 and got["last"] == n - 1
    # Small data is drawn as is.
    assert run_series("s.downsample([[0, 1, 2], [5, 6, 7]], 500)") == [[0, 1, 2], [5, 6, 7]]


def test_runs_are_aligned_on_the_union_of_their_steps() -> None:
    # A live run is a prefix of the others; a run recorded with another stride is merged.
    got = run_series(
        "(() => { const runs = [{steps: [0, 1, 2, 3]}, {steps: [0, 1]}];"
        " const u = s.unionSteps(runs);"
        " const odd = s.unionSteps([{steps: [0, 2, 4]}, {steps: [0, 3]}]);"
        " return {u, a: s.align(u, runs[1], [5, 6]), odd,"
        " b: s.align(odd, {steps: [0, 3]}, [7, 8])}; })()"
    )
    assert got == {
        "u": [0, 1, 2, 3],
        "a": [5, 6, None, None],
        "odd": [0, 2, 3, 4],
        "b": [7, None, 8, None],
    }


def test_chart_numbers_keep_steps_whole_and_use_no_exponent_below_1e5() -> None:
    values = "[0, 500, 12345, 99999, 120000, 10500.25, 0.30000000000000004, 0.69314718, " + (
        "1e-4, 2.5e7 + 0.5, -0.25, NaN, null]"
    )
    got = run_series(f"{values}.map((v) => s.chartNumber(v))", "util.js")
    assert got == [
        *("0", "500", "12345", "99999", "120000", "10500", "0.3", "0.6931"),
        *("1.000e-4", "2.500e+7", "-0.25", "NaN", "–"),
    ]
