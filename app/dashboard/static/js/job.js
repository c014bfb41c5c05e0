// One job, live: progress, loss / validation / diagnostics charts, the final table and
// downloads. Curves grow from the SSE stream (read with fetch), or by polling when it fails.

import { ApiError, download, getJSON, readEvents, request, saveBlob } from "./api.js";
import { Chart, chartDownloads, color } from "./charts.js";
import { DIAGNOSTICS, JobData } from "./jobdata.js";
import {
  ACTIVE, errorBox, fmt, h, pct, progressBar, statusBadge,
} from "./util.js";

const POLL_MS = 2000;
const REFRESH_MS = 3000; // at most one GET of the whole job per this while live
const STREAM_TRIES = 3;

function chartSpec(title, xLabel, yLabel, series, logY) {
  const spec = { title, xLabel, yLabel, logY, series: [], bands: [] };
  series.forEach((s, i) => {
    const c = s.kind === "run" ? color(s.scheme, 0.45) : color(s.scheme);
    if (s.kind === "mean") spec.series.push({ label: s.label, stroke: c, width: 2 });
    else if (s.kind === "run") spec.series.push({ label: s.label, stroke: c, width: 1 });
    else spec.series.push({ label: s.label, stroke: color(s.scheme, 0.25), width: 0.5 });
    if (s.kind === "max") spec.bands.push([i + 1, i + 2, color(s.scheme, 0.15)]);
  });
  return spec;
}

const X_LABELS = { step: "step", epoch: "epoch", wall: "seconds since run start" };

export class JobView {
  constructor(root, id) {
    this.root = root;
    this.id = id;
    this.abort = new AbortController();
    this.charts = [];
    this.opts = { x: "step", smoothing: 0, singles: false, logY: false, metric: "distinct_units" };
    this.pending = false;
    this.lastDraw = 0;
    this.drawCost = 0;
    this.lastRefresh = 0;
    this.mode = "idle"; // "stream" | "poll" | "idle"
  }

  async start() {
    this.root.replaceChildren(h("p", { "aria-busy": "true" }, `Loading ${this.id}…`));
    let doc;
    try {
      doc = await getJSON(`/v1/jobs/${encodeURIComponent(this.id)}`, { signal: this.abort.signal });
    } catch (err) {
      this.root.replaceChildren(h("h2", {}, this.id), errorBox(err));
      return;
    }
    this.data = new JobData(doc);
    this.layout();
    this.buildCharts();
    this.refreshText();
    if (ACTIVE.has(doc.status)) this.follow();
  }

  stop() {
    this.abort.abort();
    for (const c of this.charts) c.destroy();
    this.charts = [];
  }

  layout() {
    const id = this.id;
    const base = `/v1/jobs/${encodeURIComponent(id)}`;
    this.header = h("div.job-head");
    this.cancelBtn = h("button.danger", { type: "button", onclick: () => this.cancel() }, "Cancel job");
    const dl = (label, path, name) =>
      h("button", { type: "button", onclick: () => this.guard(download(path, name)) }, label);
    const jsonBtn = h(
      "button",
      {
        type: "button",
        onclick: () =>
          saveBlob(new Blob([JSON.stringify(this.data.doc, null, 2)], { type: "application/json" }), `${id}.json`),
      },
      "Job JSON",
    );
    this.downloads = h(
      "div.downloads",
      { role: "group", "aria-label": "Downloads" },
      dl("Report PNG", `${base}/report.png`, `${id}-report.png`),
      dl("Report SVG", `${base}/report.svg`, `${id}-report.svg`),
      dl("Results CSV", `${base}/results.csv`, `${id}-results.csv`),
      dl("Summary CSV", `${base}/results.csv?kind=summary`, `${id}-summary.csv`),
      jsonBtn,
    );
    this.messages = h("div.messages", { "aria-live": "polite" });
    this.liveNote = h("span.live-note", { "data-testid": "live-mode" });
    const o = this.opts;
    const xSelect = h(
      "select#x-axis",
      { onchange: (e) => { o.x = e.target.value; this.buildCharts(); } },
      ...Object.entries(X_LABELS).map(([v, l]) => h("option", { value: v, selected: v === o.x }, l)),
    );
    const smoothOut = h("output#smoothing-value", {}, "0");
    const smooth = h("input#smoothing", {
      type: "range", min: 0, max: 0.99, step: 0.01, value: 0,
      oninput: (e) => {
        o.smoothing = Number(e.target.value);
        smoothOut.textContent = e.target.value;
        this.redraw();
      },
    });
    const check = (idName, label, key) =>
      h(
        "label.check",
        {},
        h(`input#${idName}`, {
          type: "checkbox",
          checked: o[key],
          onchange: (e) => { o[key] = e.target.checked; this.buildCharts(); },
        }),
        label,
      );
    this.controls = h(
      "div.controls",
      { role: "group", "aria-label": "Chart options" },
      h("label", { for: "x-axis" }, "x axis "), xSelect,
      h("label", { for: "smoothing" }, "smoothing "), smooth, smoothOut,
      check("log-y", "log y", "logY"),
      check("single-runs", "single runs", "singles"),
    );
    this.lossBox = h("div.chart-box", { "data-testid": "loss-chart" });
    this.epochBox = h("div.chart-grid");
    this.finalBox = h("section", { "aria-labelledby": "final-title" });
    this.runsBox = h("section", { "aria-labelledby": "runs-title" });
    const metric = h(
      "select#diag-metric",
      { onchange: (e) => { this.opts.metric = e.target.value; this.buildCharts(); } },
      ...Object.entries(DIAGNOSTICS).map(([v, l]) => h("option", { value: v, selected: v === this.opts.metric }, l)),
    );
    this.diagBox = h("div.chart-grid");
    this.root.replaceChildren(
      this.header,
      this.messages,
      h("div.toolbar", {}, this.cancelBtn, this.downloads),
      h("h3", {}, "Batch loss ", this.liveNote),
      this.controls,
      this.lossBox,
      h("h3", {}, "Validation per epoch"),
      this.epochBox,
      this.finalBox,
      h("h3", {}, "Diagnostics per layer over epochs"),
      h("p", {}, h("label", { for: "diag-metric" }, "metric "), metric),
      this.diagBox,
      this.runsBox,
    );
  }

  guard(promise) {
    promise.catch((err) => {
      if (err.name !== "AbortError") this.messages.replaceChildren(errorBox(err));
    });
  }

  chart(box, spec, data, stem) {
    const chart = new Chart(box, spec);
    chart.el.append(chartDownloads(chart, `${this.id}-${stem}`));
    chart.update(data);
    this.charts.push(chart);
    return chart;
  }

  buildCharts() {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    const o = this.opts;
    const loss = this.data.lossData(o);
    this.lossChart = this.chart(
      this.lossBox, chartSpec("Batch loss", X_LABELS[o.x], "loss", loss.series, o.logY), loss.data, "batch-loss",
    );
    this.epochCharts = [
      ["val_loss", "Validation loss", o.logY],
      ["val_accuracy", "Validation accuracy", false],
    ].map(([metric, title, logY]) => {
      const d = this.data.epochData(metric, o.singles);
      const chart = this.chart(this.epochBox, chartSpec(title, "epoch", metric, d.series, logY), d.data, metric);
      chart.metric = metric;
      return chart;
    });
    this.diagCharts = this.data.layers().map((layer) => {
      const d = this.data.diagnosticsData(layer.layer, o.metric);
      const title = `${layer.name} (${layer.units} ${layer.activation}): ${DIAGNOSTICS[o.metric]}`;
      const spec = chartSpec(title, "epoch", DIAGNOSTICS[o.metric], d.series, false);
      spec.height = 200;
      for (const s of spec.series) s.points = true;
      const chart = this.chart(this.diagBox, spec, d.data, `diag-${layer.name}-${o.metric}`);
      chart.layer = layer.layer;
      return chart;
    });
  }

  /** New data into the existing charts: at most once per frame, and never more than half
   * the time on it (the next redraw waits twice what the last one took). */
  redraw() {
    if (this.pending) return;
    this.pending = true;
    const wait = Math.max(0, this.lastDraw + 2 * this.drawCost - performance.now());
    setTimeout(() => requestAnimationFrame(() => {
      this.pending = false;
      if (!this.lossChart) return;
      const start = performance.now();
      this.lossChart.update(this.data.lossData(this.opts).data);
      for (const c of this.epochCharts) c.update(this.data.epochData(c.metric, this.opts.singles).data);
      for (const c of this.diagCharts) c.update(this.data.diagnosticsData(c.layer, this.opts.metric).data);
      this.lossBox.dataset.points = String(this.data.runs.reduce((n, r) => n + r.steps.length, 0));
      this.lastDraw = performance.now();
      this.drawCost = this.lastDraw - start;
    }), wait);
  }

  refreshText() {
    const doc = this.data.doc;
    const p = doc.progress || {};
    this.header.replaceChildren(
      h("h2", {}, doc.id, " ", statusBadge(doc.status)),
      h(
        "p.job-meta",
        {},
        progressBar(p.fraction, "job progress"),
        ` ${pct(p.fraction)} · ${p.runs_done}/${p.runs_total} runs done`,
        p.eta_seconds != null ? ` · ETA ${Math.round(p.eta_seconds)} s` : "",
        ` · ${doc.spec?.dataset?.name} · hidden ${JSON.stringify(doc.spec?.model?.hidden_layers)}`,
        ` · ${doc.spec?.training?.optimizer?.name}`,
        doc.error ? h("span.error-text", {}, ` · ${doc.error}`) : "",
      ),
    );
    this.cancelBtn.hidden = !ACTIVE.has(doc.status);
    this.lossBox.dataset.status = doc.status;
    this.lossBox.dataset.points = String(this.data.runs.reduce((n, r) => n + r.steps.length, 0));
    this.renderFinal();
    this.renderRuns();
  }

  renderFinal() {
    const rows = (this.data.doc.summary || []).map((s) => {
      const acc = s.final_val_accuracy || {};
      const loss = s.final_val_loss || {};
      return h(
        "tr",
        {},
        h("th", { scope: "row" }, h("span.swatch", { style: `background:${color(s.scheme)}` }), s.label),
        h("td", {}, s.initializer || "–"),
        h("td", {}, `${s.runs_finished}/${s.runs}`),
        h("td", {}, `${fmt(acc.mean)} ± ${fmt(acc.std)}`),
        h("td", {}, `${fmt(acc.min)} – ${fmt(acc.max)}`),
        h("td", {}, `${fmt(loss.mean)} ± ${fmt(loss.std)}`),
        h("td", {}, `${fmt(loss.min)} – ${fmt(loss.max)}`),
        h("td", {}, fmt(s.last_batch_loss?.mean)),
        h("td", {}, String(s.diverged ?? 0)),
        h("td", {}, fmt(s.seconds, 2)),
      );
    });
    const head = ["scheme", "initializer", "finished", "val acc mean ± std", "val acc min–max",
      "val loss mean ± std", "val loss min–max", "last batch loss", "diverged", "seconds"];
    this.finalBox.replaceChildren(
      h("h3#final-title", {}, "Final results"),
      h("div.table-wrap", {}, h("table.final", { "data-testid": "final-table" },
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))),
    );
  }

  renderRuns() {
    const rows = this.data.runs.map((r) =>
      h(
        "tr",
        {},
        h("td", {}, String(r.index)),
        h("td", {}, r.label),
        h("td", {}, String(r.repeat)),
        h("td", {}, String(r.seed)),
        h("td", {}, statusBadge(r.status)),
        h("td", {}, progressBar(r.totalBatches ? r.batch / r.totalBatches : 0, `run ${r.index} progress`),
          ` ${r.batch}/${r.totalBatches}`),
        h("td", {}, fmt(r.final?.val_accuracy)),
      ));
    const head = ["run", "scheme", "repeat", "seed", "status", "batches", "final val acc"];
    this.runsBox.replaceChildren(
      h("h3#runs-title", {}, "Runs"),
      h("div.table-wrap", {}, h("table", {},
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))),
    );
  }

  async refresh(force = false) {
    const now = Date.now();
    if (!force && now - this.lastRefresh < REFRESH_MS) return;
    this.lastRefresh = now;
    const doc = await getJSON(`/v1/jobs/${encodeURIComponent(this.id)}`, { signal: this.abort.signal });
    const before = this.data.layers().length;
    this.data.setDoc(doc);
    this.refreshText();
    if (this.data.layers().length !== before) this.buildCharts();
    else this.redraw();
  }

  onEvent(ev) {
    this.lastEventId = ev.id || this.lastEventId;
    const body = JSON.parse(ev.data);
    if (ev.event === "points") {
      if (this.data.addPoints(body.run, body.points, ev.id)) this.redraw();
    } else if (ev.event === "epoch") {
      if (this.data.addEpoch(body.run, body.record)) this.redraw();
      this.guard(this.refresh());
    } else if (ev.event === "progress") {
      const doc = this.data.doc;
      doc.status = body.status;
      doc.progress = { ...doc.progress, ...body };
      for (const r of body.runs || []) {
        const run = this.data.runs[r.run];
        if (run) Object.assign(run, { status: r.status, batch: r.batch, totalBatches: r.total_batches });
      }
      this.refreshText();
    } else if (ev.event === "status") {
      this.data.doc.status = body.status;
      this.refreshText();
    } else if (ev.event === "end") {
      this.ended = true;
    }
  }

  async follow() {
    let failures = 0;
    this.mode = "stream";
    while (!this.abort.signal.aborted && !this.ended && failures < STREAM_TRIES) {
      this.liveNote.textContent = "(live)";
      try {
        await readEvents(`/v1/jobs/${encodeURIComponent(this.id)}/events`, {
          lastEventId: this.lastEventId,
          signal: this.abort.signal,
          onEvent: (ev) => this.onEvent(ev),
        });
        failures = 0;
        if (!this.ended) await new Promise((r) => setTimeout(r, 500)); // closed early: resume
      } catch (err) {
        if (err.name === "AbortError") return;
        if (err instanceof ApiError && err.status < 500 && err.status !== 429) {
          this.messages.replaceChildren(errorBox(err));
          return;
        }
        failures += 1;
        await new Promise((r) => setTimeout(r, 1000 * failures));
      }
    }
    if (!this.ended && !this.abort.signal.aborted) await this.poll();
    if (this.abort.signal.aborted) return;
    this.liveNote.textContent = "";
    this.mode = "idle";
    this.guard(this.refresh(true));
  }

  /** The fallback when the stream cannot be read: GET the job every POLL_MS until it ends. */
  async poll() {
    this.mode = "poll";
    this.liveNote.textContent = "(polling)";
    while (!this.abort.signal.aborted) {
      try {
        await this.refresh(true);
        if (!ACTIVE.has(this.data.doc.status)) return;
      } catch (err) {
        if (err.name === "AbortError") return;
        this.messages.replaceChildren(errorBox(err));
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async cancel() {
    this.cancelBtn.disabled = true;
    try {
      const res = await request(`/v1/jobs/${encodeURIComponent(this.id)}`, { method: "DELETE" });
      this.data.setDoc(await res.json());
      this.refreshText();
    } catch (err) {
      this.messages.replaceChildren(errorBox(err));
    } finally {
      this.cancelBtn.disabled = false;
    }
  }
}
