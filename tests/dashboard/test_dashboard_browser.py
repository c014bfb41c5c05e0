"""The dashboard in a real headless Chromium against a real API + Celery worker + Redis.

Keys off: a job submitted from the form grows its curves over SSE before it ends and is
cancelled from its page; a finished job opens with its table and charts (single runs, log y,
wall-time x, smoothing); the list filters by status; a bad scheme is shown at its field; the
tensor explorer draws the histogram and agrees with the API. Keys on: the key is entered
once, kept in sessionStorage and sent. No console errors anywhere (only the 4xx the test
provokes on purpose).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from tests.dashboard.conftest import Browser, console_errors

pytestmark = pytest.mark.integration

SMALL_JOB = {
    "dataset": {"name": "circles", "train_size": 200, "validation_size": 50, "noise": 0.05},
    "model": {"hidden_layers": [8, 4], "activation": "relu"},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 4},
    "schemes": [
        {"label": "zeros", "initializer": "zeros"},
        {"label": "He", "initializer": "he_normal"},
    ],
    "repeats": 2,
    "seed": 1,
}
KEY = "dashboard-test-key-5c1e"


def wait_finished(client: httpx.Client, job_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/v1/jobs/{job_id}").json()
        if doc["status"] not in ("queued", "running"):
            return dict(doc)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def points(b: Browser) -> int:
    return int(b.css("[data-testid=loss-chart]").get_attribute("data-points") or 0)


def status(b: Browser) -> str:
    return str(b.css("[data-testid=loss-chart]").get_attribute("data-status"))


def legend_series(b: Browser, index: int = 0) -> int:
    """How many series the index-th chart on the page draws (uPlot's legend rows, x excluded)."""
    return int(
        b.js(
            "return document.querySelectorAll('.uplot')[arguments[0]]"
            ".querySelectorAll('.u-legend .u-series').length - 1",
            index,
        )
    )


def job_rows(b: Browser) -> dict[str, str]:
    """The jobs list on screen: id → status, in order."""
    rows = b.all("[data-testid=jobs-table] tbody tr")
    return {r.get_attribute("data-job"): r.get_attribute("data-status") for r in rows}


def set_field(b: Browser, selector: str, value: str) -> None:
    el = b.css(selector)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(value)


def test_dashboard_without_keys(
    api_server: str, start_worker: Callable[..., Any], browser: Browser, tmp_path: Path
) -> None:
    start_worker(concurrency=1)
    b = browser
    with httpx.Client(base_url=api_server, timeout=30) as client:
        finished_id = client.post("/v1/jobs", json=SMALL_JOB).json()["id"]
        finished = wait_finished(client, finished_id)
        assert finished["status"] == "succeeded"

        # --- New comparison from a preset, a field changed in the form, submitted.
        b.open(api_server, "#/new")
        Select(b.wait(lambda: b.css("#preset"))).select_by_value("dlai-circles")
        b.wait(lambda: '"name": "circles"' in b.css("#job-json").get_attribute("value"))
        # Every alias of the catalog can be typed and picked in a scheme's input.
        catalog = client.get("/v1/initializers").json()["initializers"]
        aliases = b.js(
            "return [...document.querySelectorAll('#initializer-names option')].map(o => o.value)"
        )
        assert sorted(aliases) == sorted(a for e in catalog for a in e["aliases"])
        # The JSON is editable and is what fills the form (and the curl).
        edited = json.loads(b.css("#job-json").get_attribute("value"))
        edited["repeats"] = 4
        b.js(
            "const t = document.getElementById('job-json'); t.value = arguments[0];"
            "t.dispatchEvent(new Event('input'))",
            json.dumps(edited),
        )
        b.wait(lambda: b.css("#f-repeats").get_attribute("value") == "4", what="the form")
        assert '"repeats":4' in b.text("[data-testid=curl]")
        set_field(b, "#f-repeats", "2")
        set_field(b, "#f-seed", "7")
        sent = b.css("#job-json").get_attribute("value")
        assert '"seed": 7' in sent and '"steps": 15000' in sent
        assert "curl -X POST" in b.text("[data-testid=curl]")
        b.css("form.new-job button[type=submit]").click()
        b.wait(lambda: "#/jobs/job_" in b.driver.current_url, what="the job page")
        live_id = b.driver.current_url.rsplit("/", 1)[-1]

        # --- Curves grow before the job ends (SSE read with fetch), then cancel it.
        first = b.wait(lambda: status(b) == "running" and points(b) > 0 and points(b), 60)
        b.wait(lambda: points(b) > first + 50, 60, "more loss points")
        assert status(b) == "running", "the curves must grow while the job runs"
        assert b.text("[data-testid=live-mode]") == "(live)"
        b.css(".toolbar button.danger").click()
        b.wait(lambda: status(b) == "cancelled", 30, "the job cancelled")
        assert client.get(f"/v1/jobs/{live_id}").json()["status"] == "cancelled"
        assert client.get(f"/v1/jobs/{live_id}").json()["spec"]["seed"] == 7

        # --- A finished job: final table, charts and their options.
        b.open(api_server, f"#/jobs/{finished_id}")
        rows = b.wait(lambda: b.all("[data-testid=final-table] tbody tr"))
        assert len(rows) == 2 and rows[1].text.startswith("He")
        accuracy = finished["summary"][1]["final_val_accuracy"]
        assert f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f}" in rows[1].text
        assert points(b) == sum(len(r["batch_losses"]) for r in finished["runs"])
        charts = len(b.all(".uplot"))
        assert charts == 2 + 1 + 3  # loss; val loss + val acc; one per layer (8, 4, output)
        assert legend_series(b) == 2 * 3  # mean, max, min per scheme
        b.css("#single-runs").click()
        b.wait(lambda: legend_series(b) == 2 * 3 + 4, what="single runs drawn")
        b.css("#log-y").click()
        Select(b.css("#x-axis")).select_by_value("wall")
        b.js(
            "const s = document.getElementById('smoothing'); s.value = '0.9';"
            "s.dispatchEvent(new Event('input'))"
        )
        b.wait(lambda: b.text("#smoothing-value") == "0.9")
        assert "seconds since run start" in b.css("[data-testid=loss-chart]").text
        # Hover: the legend shows every series' value at the cursor.
        ActionChains(b.driver).move_to_element(b.css("[data-testid=loss-chart] .u-over")).perform()
        values = [v.text for v in b.all("[data-testid=loss-chart] .u-legend .u-series .u-value")]
        assert len(values) == 1 + 2 * 3 + 4 and all(v not in ("", "–") for v in values), values
        Select(b.css("#diag-metric")).select_by_value("dead_fraction")
        b.wait(lambda: "dead ReLU fraction" in b.text(".chart-grid:last-of-type figcaption"))
        Select(b.css("#x-axis")).select_by_value("epoch")
        b.wait(lambda: "epoch" in b.css("[data-testid=loss-chart] .u-legend .u-series").text)
        # Downloads: the report (PNG, SVG), the CSVs and the job's JSON land as files.
        b.driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
        )
        for button in b.all(".downloads button, [data-testid=loss-chart] .chart-tools button"):
            button.click()
        stem = finished_id
        want = {f"{stem}-report.png", f"{stem}-report.svg", f"{stem}-results.csv"}
        want |= {f"{stem}-summary.csv", f"{stem}.json"}
        want |= {f"{stem}-batch-loss.png", f"{stem}-batch-loss.csv"}  # the chart, as drawn
        b.wait(lambda: {p.name for p in tmp_path.iterdir()} >= want, what="the downloads")
        assert (tmp_path / f"{stem}-report.png").read_bytes().startswith(b"\x89PNG")
        assert json.loads((tmp_path / f"{stem}.json").read_text())["id"] == finished_id
        head = (tmp_path / f"{stem}-summary.csv").read_text().splitlines()[0]
        assert head.startswith("scheme,label,")
        rows = (tmp_path / f"{stem}-batch-loss.csv").read_text().splitlines()
        assert rows[0].startswith("epoch,") and len(rows) > 1  # full data, x as chosen

        # --- The list: newest first; the status filter asks the server (?status=), so it
        # finds a job beyond the first page: 20 newer cancelled jobs push the finished one off.
        b.open(api_server, "#/jobs")
        b.wait(lambda: len(b.all("[data-testid=jobs-table] tbody tr")) >= 2)
        ids = [r.get_attribute("data-job") for r in b.all("[data-testid=jobs-table] tbody tr")]
        assert ids.index(live_id) < ids.index(finished_id)
        for _ in range(20):
            extra = client.post("/v1/jobs", json={**SMALL_JOB, "repeats": 1}).json()["id"]
            assert client.delete(f"/v1/jobs/{extra}").json()["status"] == "cancelled"
        b.open(api_server, "#/jobs")
        assert finished_id not in b.wait(lambda: len(job_rows(b)) == 20 and job_rows(b))
        Select(b.css("#status-filter")).select_by_value("succeeded")
        shown = b.wait(lambda: finished_id in job_rows(b) and job_rows(b), what="the filter")
        assert set(shown.values()) == {"succeeded"}
        assert "%" in b.css(f"tr[data-job='{finished_id}']").text  # best val accuracy
        # 21 cancelled jobs: the filtered list pages on, and its second page holds the 21st.
        Select(b.css("#status-filter")).select_by_value("cancelled")
        shown = b.wait(lambda: set(job_rows(b).values()) == {"cancelled"} and job_rows(b))
        assert len(shown) == 20 and live_id not in shown
        older = b.css("nav.pager button:last-child")
        assert older.text == "Older →" and older.is_enabled()
        older.click()
        shown = b.wait(lambda: live_id in job_rows(b) and job_rows(b), what="page 2")
        assert set(shown.values()) == {"cancelled"}

        # --- A bad scheme: the 422 is shown at the field it names.
        b.open(api_server, "#/new")
        init = b.wait(lambda: b.css("#scheme-1-initializer"))
        set_field(b, "#scheme-1-initializer", "no_such_scheme")
        b.css("form.new-job button[type=submit]").click()
        b.wait(lambda: b.css("#scheme-1-initializer").get_attribute("aria-invalid") == "true")
        message = b.text(".scheme-row[data-path='schemes.1'] + .field-error")
        assert "schemes.1.initializer" in message and "no_such_scheme" in message
        assert init.get_attribute("aria-invalid") == "true"
        assert b.css("#scheme-0-initializer").get_attribute("aria-invalid") is None
        # A batch size that is not a number reaches the server as typed (not as null, which
        # would mean the full batch) and its 422 is shown at the field.
        set_field(b, "#scheme-1-initializer", "he_normal")
        set_field(b, "#f-training-batch_size", "abc")
        b.css("form.new-job button[type=submit]").click()
        batch = b.css("#f-training-batch_size")
        b.wait(lambda: batch.get_attribute("aria-invalid") == "true", what="the batch size error")
        assert "training.batch_size" in b.text(".field-error") and "abc" in b.text(".field-error")

        # --- Tensor explorer: histogram, stats and fans as the API gives them.
        b.open(api_server, "#/tensors")
        set_field(b, "#t-initializer", "kaiming_uniform")
        set_field(b, "#t-shape", "64, 32")
        set_field(b, "#t-seed", "3")
        b.css("form.tensor-form button[type=submit]").click()
        stats = b.wait(lambda: b.text("[data-testid=tensor-stats]"))
        want = client.get(
            "/v1/tensors",
            params={"shape": "64,32", "initializer": "kaiming_uniform", "seed": 3, "stats": "true"},
        ).json()
        assert f"fan_in {want['fan_in']}" in stats and f"fan_out {want['fan_out']}" in stats
        assert f"std {want['stats']['std']:.4f}" in stats
        hist = b.css("[data-testid=histogram]")
        assert hist.get_attribute("data-bins") == "60"
        assert hist.get_attribute("data-expected") == "yes"
        snippets = [s.get_attribute("data-snippet") for s in b.all(".snippet")]
        assert snippets == ["TF.js", "curl", "Python"]
        assert "tf.tensor(body.values, body.shape)" in b.text(".snippet[data-snippet='TF.js']")

        # Phone width: nothing wider than the screen (tables scroll inside their own box).
        b.driver.set_window_size(390, 900)
        try:
            b.open(api_server, f"#/jobs/{finished_id}")
            b.wait(lambda: b.all("[data-testid=final-table] tbody tr"))
            b.wait(lambda: b.js("return document.documentElement.scrollWidth") <= 390)
        finally:
            b.driver.set_window_size(1280, 1000)

    assert console_errors(b.console(), allowed=("status of 422",)) == []


# Makes every fetch of an SSE stream fail, as a proxy that buffers or drops streams would.
NO_STREAMS = """
const realFetch = window.fetch;
window.fetch = (url, init) => String(url).includes('/events')
  ? Promise.reject(new TypeError('stream blocked by the test'))
  : realFetch(url, init);
"""


def test_a_job_is_followed_by_polling_when_its_stream_cannot_be_read(
    api_server: str, start_worker: Callable[..., Any], browser: Browser
) -> None:
    start_worker(concurrency=1)
    b = browser
    client = httpx.Client(base_url=api_server, timeout=30)
    # 9 runs of 15,000 steps: far longer than the fallback takes (it is cancelled below).
    job_id = client.post("/v1/jobs", json={"preset": "dlai-circles", "repeats": 3}).json()["id"]
    script = b.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": NO_STREAMS}
    )
    try:
        b.open(api_server, f"#/jobs/{job_id}")
        b.wait(lambda: b.text("[data-testid=live-mode]") == "(polling)", 30, "the fallback")
        assert status(b) in ("queued", "running")
        first = points(b)
        b.wait(lambda: points(b) > first, 60, "points from polling")
        assert status(b) == "running"
        assert client.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
        b.wait(lambda: status(b) == "cancelled", 30, "the cancel seen by polling")
        b.wait(lambda: b.text("[data-testid=live-mode]") == "")
        assert len(b.all("[data-testid=final-table] tbody tr")) == 3  # one per scheme
    finally:
        client.close()
        b.driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
    assert console_errors(b.console()) == []


# Answers GET /v1/jobs/job_large with a finished job of 64 runs × 20,000 batch-loss points (8
# schemes × 8 repeats): the page reads it as it reads any job. (That the downsampling keeps a
# one-step spike is checked on series.js itself, tests/dashboard/test_dashboard_series.py.)
LARGE_JOB = """
const RUNS = 64, POINTS = 20000, SCHEMES = 8;
const realFetch = window.fetch;
function largeJob() {
  const runs = Array.from({ length: RUNS }, (_, i) => ({
    index: i, scheme: i % SCHEMES, label: `s${i % SCHEMES}`, repeat: Math.floor(i / SCHEMES),
    seed: i, status: 'succeeded', epoch: 1, batch: POINTS, total_batches: POINTS, diverged: false,
    started_at: '2026-01-01T00:00:00Z',
    batch_steps: Array.from({ length: POINTS }, (_, k) => k + 1),
    batch_losses: Array.from({ length: POINTS }, (_, k) =>
      2 * Math.exp(-k / 3000) + 0.1 * Math.abs(Math.sin(i * 7 + k))),
    epochs: [{ epoch: 1, step: POINTS, train_loss: 0.3, train_accuracy: 0.9, val_loss: 0.5,
               val_accuracy: 0.8 + i / 1000, seconds: 10 }],
    diagnostics: {},
  }));
  const stat = { mean: 0.8, std: 0.01, min: 0.79, max: 0.81 };
  return {
    id: 'job_large', status: 'succeeded', created_at: '2026-01-01T00:00:00Z',
    started_at: '2026-01-01T00:00:00Z', finished_at: '2026-01-01T00:10:00Z', error: null,
    progress: { runs_total: RUNS, runs_done: RUNS, runs_cancelled: 0, fraction: 1,
                eta_seconds: null },
    spec: { dataset: { name: 'circles' }, model: { hidden_layers: [8] },
            training: { optimizer: { name: 'adam' } }, repeats: 8,
            schemes: Array.from({ length: SCHEMES },
                                (_, i) => ({ label: `s${i}`, initializer: 'he_normal' })) },
    runs,
    summary: Array.from({ length: SCHEMES }, (_, i) => ({
      scheme: i, label: `s${i}`, final_val_accuracy: stat, final_val_loss: stat,
      last_batch_loss: stat, diverged: 0, seconds: 10 })),
  };
}
window.fetch = (url, init) => String(url).endsWith('/v1/jobs/job_large')
  ? Promise.resolve(new Response(JSON.stringify(largeJob()),
      { headers: { 'Content-Type': 'application/json' } }))
  : realFetch(url, init);
"""

# How many pixels of the loss chart's canvas are painted (not transparent).
PAINTED = """
const canvas = document.querySelector('[data-testid=loss-chart] .uplot canvas');
const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let n = 0;
for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
return n;
"""


def test_a_job_of_64_runs_by_20000_points_is_drawn_downsampled(
    api_server: str, browser: Browser
) -> None:
    b = browser
    script = b.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": LARGE_JOB}
    )
    try:
        b.open(api_server, "#/jobs/job_large")
        b.wait(lambda: points(b) == 64 * 20_000, 120, "the large job read")
        assert legend_series(b) == 8 * 3  # mean, max, min per scheme
        loss = b.css("[data-testid=loss-chart] figure.chart")
        drawn = int(loss.get_attribute("data-drawn"))
        width = int(b.js("return arguments[0].clientWidth", loss))
        assert 64 <= drawn <= 2 * width < 20_000  # min/max per pixel column, not every point
        assert b.js(PAINTED) > 1000
        assert len(b.all("[data-testid=final-table] tbody tr")) == 8
        b.css("#single-runs").click()
        b.wait(lambda: legend_series(b) == 8 * 3 + 64, 120, "64 single runs drawn")
        drawn = int(b.css("[data-testid=loss-chart] figure.chart").get_attribute("data-drawn"))
        assert 64 <= drawn <= 2 * width
        assert b.js(PAINTED) > 1000
    finally:
        b.driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
    assert console_errors(b.console()) == []


def test_dashboard_with_api_keys(
    start_api: Callable[..., Any], start_worker: Callable[..., Any], browser: Browser
) -> None:
    server = start_api({"INITLAB_API_KEYS": KEY})
    start_worker(concurrency=1)
    b = browser
    b.open(server.url, "#/jobs")
    b.js("sessionStorage.clear()")
    b.open(server.url, "#/jobs")
    alert = b.wait(lambda: b.text("[role=alert]"))
    assert alert.startswith("401") and "API key" in alert
    # By keyboard: Enter on the button opens the dialog with the input focused, Enter saves.
    b.css("#key-button").send_keys(Keys.ENTER)
    b.wait(lambda: b.driver.switch_to.active_element.get_attribute("id") == "api-key")
    b.driver.switch_to.active_element.send_keys(KEY + Keys.ENTER)
    b.wait(lambda: "No jobs yet." in b.text("#main"), what="the list with the key")
    assert b.js("return sessionStorage.getItem('initlab.apiKey')") == KEY
    assert b.text("#key-state") == "API key set"

    b.open(server.url, "#/new")  # presets need the key too
    b.wait(lambda: b.css("#preset"))
    assert "X-API-Key: $INITLAB_API_KEY" in b.text("[data-testid=curl]")
    b.css("form.new-job button[type=submit]").click()
    b.wait(lambda: "#/jobs/job_" in b.driver.current_url)
    job_id = b.driver.current_url.rsplit("/", 1)[-1]
    b.wait(lambda: status(b) == "succeeded", 90, "the job to succeed")
    rows = b.wait(lambda: b.all("[data-testid=final-table] tbody tr"))
    assert len(rows) == 2
    with httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": KEY}) as client:
        doc = client.get(f"/v1/jobs/{job_id}").json()
    assert doc["status"] == "succeeded"
    assert points(b) == sum(len(r["batch_losses"]) for r in doc["runs"])
    assert console_errors(b.console(), allowed=("status of 401",)) == []


DENSITY_CHECK = """
const done = arguments[arguments.length - 1];
(async () => {
  const t = await import('/dashboard/js/tensors.js');
  const c = await import('/dashboard/js/catalog.js');
  const catalog = await c.initializers();
  const out = {};
  for (const entry of catalog.filter((e) => e.random && !e.name.includes('orthogonal'))) {
    const q = `shape=300,200&initializer=${entry.name}&seed=2&stats=true`;
    const res = await fetch(`/v1/tensors?${q}`);
    if (!res.ok) { out[entry.name] = `HTTP ${res.status}`; continue; }
    const body = await res.json();
    const pdf = t.expectedDensity(entry, body);
    if (!pdf) { out[entry.name] = null; continue; }
    const h = t.histogram(body.values, 40);
    const w = h.centers[1] - h.centers[0];
    let tv = 0;  // total variation distance between the histogram and the density
    for (let i = 0; i < h.centers.length; i++) tv += Math.abs(h.density[i] - pdf(h.centers[i])) * w;
    out[entry.name] = tv / 2;
  }
  return out;
})().then(done, (e) => done(String(e)));
"""


def test_the_expected_density_fits_every_random_scheme(api_server: str, browser: Browser) -> None:
    """The explorer's expected density against 60,000 values the API drew for each random
    scheme: within 0.05 in total variation (the histogram's own noise is ~0.01)."""
    browser.open(api_server, "#/tensors")
    distances = browser.driver.execute_async_script(DENSITY_CHECK)
    assert isinstance(distances, dict), distances
    drawn = {name: tv for name, tv in distances.items() if tv is not None}
    assert {"he_normal", "glorot_uniform", "kaiming_uniform", "trunc_normal", "jax_uniform"} <= set(
        drawn
    )
    # Only the sparse scheme (a point mass at 0 plus a normal) has no density drawn.
    assert set(distances) - set(drawn) == {"sparse"}, distances
    for name, tv in drawn.items():
        assert isinstance(tv, float) and tv < 0.05, (name, tv)
    assert console_errors(browser.console()) == []
