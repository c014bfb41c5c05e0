// A job's curves in the browser: built from GET /v1/jobs/{id}, grown by its SSE events, and
// turned into chart data (per scheme: mean and min–max band over repeats; single runs).

import { aggregate, align, ema, unionSteps, wallTimes } from "./series.js";

export const DIAGNOSTICS = {
  activation_std: "activation std",
  activation_mean: "activation mean",
  dead_fraction: "dead ReLU fraction",
  saturated_fraction: "saturated fraction",
  gradient_norm: "gradient norm",
  distinct_units: "distinct hidden units",
  weight_norm: "weight norm",
};

function runOf(doc) {
  return {
    index: doc.index,
    scheme: doc.scheme,
    label: doc.label,
    repeat: doc.repeat,
    seed: doc.seed,
    status: doc.status,
    batch: doc.batch,
    totalBatches: doc.total_batches,
    final: doc.final,
    startedAt: doc.started_at ? Date.parse(doc.started_at) : null,
    steps: (doc.batch_steps || []).slice(),
    losses: (doc.batch_losses || []).slice(),
    epochs: (doc.epochs || []).slice(),
    diagnostics: doc.diagnostics || {},
    liveAnchor: null, // [steps done, seconds since start] from the last SSE points event
  };
}

export class JobData {
  constructor(doc) {
    this.runs = [];
    this.setDoc(doc);
  }

  /** A (newer) job document; points the SSE stream added beyond it are kept. */
  setDoc(doc) {
    const before = new Map(this.runs.map((r) => [r.index, r]));
    this.doc = doc;
    this.runs = (doc.runs || []).map((r) => {
      const run = runOf(r);
      const old = before.get(run.index);
      if (old) {
        const last = run.steps.length ? run.steps[run.steps.length - 1] : -1;
        for (let i = 0; i < old.steps.length; i++) {
          if (old.steps[i] > last) {
            run.steps.push(old.steps[i]);
            run.losses.push(old.losses[i]);
          }
        }
        run.liveAnchor = old.liveAnchor;
        for (const e of old.epochs) if (!run.epochs.some((x) => x.epoch === e.epoch)) run.epochs.push(e);
      }
      return run;
    });
  }

  get schemes() {
    return (this.doc.spec?.schemes || []).map((s, i) => s.label || `scheme ${i}`);
  }

  /** Points of an SSE ``points`` event ([[step, loss], ...]); the ones already held are skipped. */
  addPoints(index, points, eventId) {
    const run = this.runs[index];
    if (!run || !Array.isArray(points)) return false;
    let last = run.steps.length ? run.steps[run.steps.length - 1] : -1;
    let added = false;
    for (const [step, loss] of points) {
      if (step <= last) continue;
      run.steps.push(step);
      run.losses.push(loss);
      last = step;
      added = true;
    }
    const ms = eventId ? Number(String(eventId).split("-")[0]) : NaN;
    if (added && run.startedAt && Number.isFinite(ms)) {
      run.liveAnchor = [last + 1, Math.max(0, (ms - run.startedAt) / 1000)];
    }
    return added;
  }

  addEpoch(index, record) {
    const run = this.runs[index];
    if (!run || !record || run.epochs.some((e) => e.epoch === record.epoch)) return false;
    run.epochs.push(record);
    return true;
  }

  /** Steps per epoch (the x = epoch axis): from an epoch record, else from the spec. */
  stepsPerEpoch() {
    for (const run of this.runs) {
      const rec = run.epochs.find((e) => e.epoch > 0 && e.step);
      if (rec) return rec.step / rec.epoch;
    }
    const epochs = this.doc.spec?.training?.epochs;
    const total = this.runs[0]?.totalBatches;
    return epochs && total ? total / epochs : 1;
  }

  /** [[steps done, seconds since the run started], ...] from the epoch records and SSE. */
  anchors(run) {
    const out = [];
    let t = 0;
    for (const e of [...run.epochs].sort((a, b) => a.epoch - b.epoch)) {
      t += e.seconds || 0;
      if (e.step) out.push([e.step, t]);
    }
    const live = run.liveAnchor;
    if (live && (!out.length || live[0] > out[out.length - 1][0])) out.push(live);
    return out;
  }

  /** x values for the shared steps: step, epoch, or wall-clock seconds (mean over runs). */
  xs(steps, mode) {
    if (mode === "epoch") {
      const per = this.stepsPerEpoch();
      return steps.map((s) => (s + 1) / per);
    }
    if (mode === "wall") {
      const timed = this.runs.filter((r) => this.anchors(r).length);
      if (!timed.length) return steps.map(() => 0);
      const sum = new Float64Array(steps.length);
      for (const run of timed) {
        const t = wallTimes(steps.map((s) => s + 1), this.anchors(run));
        for (let i = 0; i < t.length; i++) sum[i] += t[i];
      }
      return Array.from(sum, (v) => v / timed.length);
    }
    return Array.from(steps);
  }

  /**
   * Batch-loss chart data: per scheme its mean, then (band) max and min over repeats, then
   * with ``singles`` every run. Returns {data, series: [{label, scheme, kind}]}.
   */
  lossData({ x = "step", smoothing = 0, singles = false } = {}) {
    const steps = unionSteps(this.runs);
    const columns = this.runs.map((run) => align(steps, run, ema(run.losses, smoothing)));
    return this.grouped(this.xs(steps, x), columns, singles);
  }

  /** A per-epoch metric (val_loss, val_accuracy, ...) as chart data like lossData. */
  epochData(metric, singles = false) {
    const seen = new Set();
    for (const run of this.runs) for (const e of run.epochs) seen.add(e.epoch);
    const epochs = [...seen].sort((a, b) => a - b);
    const columns = this.runs.map((run) => {
      const at = new Map(run.epochs.map((e) => [e.epoch, e[metric] ?? null]));
      return epochs.map((e) => (at.has(e) ? at.get(e) : null));
    });
    return this.grouped(epochs, columns, singles);
  }

  grouped(xs, columns, singles) {
    const data = [xs];
    const series = [];
    this.schemes.forEach((label, s) => {
      const mine = this.runs.map((r, i) => (r.scheme === s ? columns[i] : null)).filter(Boolean);
      const agg = aggregate(mine, xs.length);
      data.push(agg.mean, agg.max, agg.min);
      series.push(
        { label: `${label} (mean)`, scheme: s, kind: "mean" },
        { label: `${label} (max)`, scheme: s, kind: "max" },
        { label: `${label} (min)`, scheme: s, kind: "min" },
      );
    });
    if (singles) {
      this.runs.forEach((run, i) => {
        data.push(columns[i]);
        series.push({ label: `${run.label} #${run.repeat}`, scheme: run.scheme, kind: "run" });
      });
    }
    return { data, series };
  }

  /** Layers named in the diagnostics ([{layer, name, units, activation}]). */
  layers() {
    for (const run of this.runs) {
      const first = run.diagnostics.init || Object.values(run.diagnostics)[0];
      if (first) return first.map((l) => ({ layer: l.layer, name: l.name, units: l.units, activation: l.activation }));
    }
    return [];
  }

  /** A diagnostic of one layer over epochs (init = epoch 0), per scheme: mean over repeats. */
  diagnosticsData(layer, metric) {
    const snap = (key) => (key === "init" ? 0 : Number(key.replace(/^epoch_/, "")));
    const seen = new Set();
    for (const run of this.runs) for (const key of Object.keys(run.diagnostics)) seen.add(snap(key));
    const epochs = [...seen].filter(Number.isFinite).sort((a, b) => a - b);
    const data = [epochs];
    const series = [];
    this.schemes.forEach((label, s) => {
      const cols = this.runs
        .filter((r) => r.scheme === s)
        .map((run) => {
          const at = new Map();
          for (const [key, layers] of Object.entries(run.diagnostics)) {
            const entry = layers.find((l) => l.layer === layer);
            at.set(snap(key), entry ? entry[metric] ?? null : null);
          }
          return epochs.map((e) => (at.has(e) ? at.get(e) : null));
        });
      data.push(aggregate(cols, epochs.length).mean);
      series.push({ label, scheme: s, kind: "mean" });
    });
    return { data, series };
  }
}
