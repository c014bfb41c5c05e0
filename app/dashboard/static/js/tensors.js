// Tensor explorer: scheme + shape + layout + seed → GET /v1/tensors (stats=true): histogram
// of the values against the expected density, stats, fans, and copy-ready snippets.

import { getJSON } from "./api.js";
import { aliasList, initializers, lookup } from "./catalog.js";
import { Chart } from "./charts.js";
import { errorBox, fmt, h } from "./util.js";

const BINS = 60;
const MAX_ELEMENTS = 4_000_000; // the page's own limit (the API has its own, larger one)

function phi(z) {
  return Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
}

/** The standard normal CDF (erf by Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
function Phi(z) {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return 0.5 * (1 + (z < 0 ? -erf : erf));
}

/** Density of N(mean, sigma²) truncated to [mean + lo·sigma, mean + hi·sigma]. */
function truncated(mean, sigma, lo, hi) {
  const mass = Phi(hi) - Phi(lo);
  return (x) => {
    const z = (x - mean) / sigma;
    return z < lo || z > hi ? 0 : phi(z) / (sigma * mass);
  };
}

/** std of a standard normal truncated to [lo, hi] (0.8796 for ±2). */
function truncatedStd(lo, hi) {
  const mass = Phi(hi) - Phi(lo);
  const a = (lo * phi(lo) - hi * phi(hi)) / mass;
  const b = (phi(lo) - phi(hi)) / mass;
  return Math.sqrt(1 + a - b * b);
}

/** The kind of distribution the values follow, in Keras's terms (a VarianceScaling
 * "normal" is truncated, as in Keras; TF.js's own spelling is not used for that reason). */
function kindOf(entry, body) {
  const c = body.initializer?.config || {};
  if (c.distribution) return c.distribution === "untruncated_normal" ? "normal" : c.distribution === "uniform" ? "uniform" : "truncated_normal";
  if (["normal", "uniform", "truncated_normal"].includes(entry.family)) return entry.family;
  if (entry.family === "variance_scaling") {
    return /Uniform/.test(body.initializer?.class_name || "") ? "uniform" : "truncated_normal";
  }
  return null;
}

/** The density the values should follow, or null when there is no simple closed form. */
export function expectedDensity(entry, body) {
  const sd = body.stats?.expected_std;
  if (!entry || !entry.random || !(sd > 0)) return null;
  const c = body.initializer?.config || {};
  const kind = kindOf(entry, body);
  const mean = c.mean ?? 0;
  if (kind === "normal") return (x) => phi((x - mean) / sd) / sd;
  if (kind === "uniform") {
    // The centre: Keras minval/maxval, torch a/b, JAX [0, scale); else 0 (± limit).
    const bounds = c.minval !== undefined ? [c.minval, c.maxval] : c.a !== undefined && c.b !== undefined ? [c.a, c.b] : c.scale !== undefined ? [0, c.scale] : [0, 0];
    const centre = (bounds[0] + bounds[1]) / 2;
    const half = Math.sqrt(3) * sd;
    return (x) => (Math.abs(x - centre) <= half ? 1 / (2 * half) : 0);
  }
  if (kind === "truncated_normal") {
    if (c.a !== undefined && c.std > 0) {
      return truncated(mean, c.std, (c.a - mean) / c.std, (c.b - mean) / c.std); // absolute bounds
    }
    const [lo, hi] = c.lower !== undefined ? [c.lower, c.upper] : [-2, 2]; // in units of σ
    return truncated(mean, sd / truncatedStd(lo, hi), lo, hi);
  }
  return null;
}

export function histogram(values, bins = BINS) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5];
  const width = (hi - lo) / bins;
  const counts = new Float64Array(bins);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / width))] += 1;
  const centers = Array.from({ length: bins }, (_, i) => lo + (i + 0.5) * width);
  const density = Array.from(counts, (c) => c / (values.length * width));
  return { centers, density };
}

export class TensorView {
  constructor(root) {
    this.root = root;
    this.chart = null;
  }

  async start() {
    try {
      this.catalog = await initializers();
    } catch (err) {
      this.root.replaceChildren(h("h2", {}, "Tensor explorer"), errorBox(err));
      return;
    }
    const input = (id, label, attrs) => h("div.field", {}, h("label", { for: id }, label), h(`input#${id}`, attrs));
    this.form = h(
      "form.tensor-form",
      { onsubmit: (e) => { e.preventDefault(); this.run(); } },
      input("t-initializer", "initializer", { list: "initializer-names", value: "he_normal", required: true, autocomplete: "off" }),
      input("t-shape", "shape", { value: "784, 256", required: true }),
      h("div.field", {}, h("label", { for: "t-layout" }, "layout"),
        h("select#t-layout", {}, h("option", { value: "keras" }, "keras (…, in, out)"), h("option", { value: "torch" }, "torch (out, in, …)"))),
      input("t-seed", "seed", { type: "number", value: 1, min: 0, step: 1 }),
      h("div.field", {}, h("label", { for: "t-dtype" }, "dtype"),
        h("select#t-dtype", {}, ["float32", "float64", "float16", "bfloat16"].map((d) => h("option", { value: d }, d)))),
      h("button.primary", { type: "submit" }, "Generate"),
    );
    this.out = h("div.tensor-out", { "aria-live": "polite" });
    this.root.replaceChildren(h("h2", {}, "Tensor explorer"), aliasList("initializer-names", this.catalog), this.form, this.out);
  }

  stop() {
    this.chart?.destroy();
  }

  query() {
    const v = (id) => this.form.querySelector(`#${id}`).value.trim();
    const shape = v("t-shape").split(/[\s,x×]+/).filter(Boolean).join(",");
    const q = new URLSearchParams({ shape, initializer: v("t-initializer"), layout: v("t-layout"), dtype: v("t-dtype") });
    if (v("t-seed") !== "") q.set("seed", v("t-seed"));
    return q;
  }

  async run() {
    const q = this.query();
    const elements = q.get("shape").split(",").reduce((n, d) => n * Number(d), 1);
    if (elements > MAX_ELEMENTS) {
      this.out.replaceChildren(errorBox(new Error(`${elements} values are too many to draw here (at most ${MAX_ELEMENTS}); use the snippets for large tensors.`)));
      return;
    }
    this.chart?.destroy();
    this.chart = null;
    let body;
    try {
      body = await getJSON(`/v1/tensors?${q}&stats=true`);
    } catch (err) {
      this.out.replaceChildren(errorBox(err));
      return;
    }
    this.show(q, body);
  }

  show(q, body) {
    q.set("seed", String(body.seed));
    const entry = lookup(this.catalog, q.get("initializer"));
    const s = body.stats || {};
    const stats = h("table.stats", { "data-testid": "tensor-stats" }, h("tbody", {},
      [["shape", body.shape.join(" × ")], ["dtype", body.dtype], ["seed", body.seed],
        ["fan_in", body.fan_in], ["fan_out", body.fan_out], ["mean", fmt(s.mean)], ["std", fmt(s.std)],
        ["expected std", fmt(s.expected_std)], ["min", fmt(s.min)], ["max", fmt(s.max)]]
        .map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v ?? "–")))),
    ));
    const resolved = h("pre.code", {}, JSON.stringify(body.initializer, null, 2));
    const chartBox = h("div.chart-box", { "data-testid": "histogram" });
    this.out.replaceChildren(
      h("div.tensor-grid", {}, chartBox, h("div", {}, stats, h("h3", {}, "Resolved (Keras form)"), resolved,
        entry ? h("p.hint", {}, entry.formula) : null)),
      h("h3", {}, "Snippets"),
      this.snippets(q),
    );
    if (body.values.length) this.draw(chartBox, body, entry);
  }

  draw(box, body, entry) {
    const hist = histogram(body.values);
    const pdf = expectedDensity(entry, body);
    const series = [{ label: "values (density)", stroke: "#1f77b4", fill: "rgba(31,119,180,0.35)", width: 1, bars: true }];
    const data = [hist.centers, hist.density];
    if (pdf) {
      series.push({ label: "expected density", stroke: "#d62728", width: 2 });
      data.push(hist.centers.map(pdf));
    }
    this.chart = new Chart(box, { title: `Histogram of ${body.values.length} values`, xLabel: "value", yLabel: "density", series });
    this.chart.update(data);
    box.dataset.bins = String(hist.centers.length);
    box.dataset.expected = pdf ? "yes" : "no";
  }

  snippets(q) {
    const url = `${location.origin}/v1/tensors?${q}`;
    const tfjs = `const res = await fetch(${JSON.stringify(url)});\nconst body = await res.json();\nconst w = tf.tensor(body.values, body.shape); // ${q.get("dtype")}`;
    const curl = `curl -H 'Accept: application/x-npy' -o weight.npy '${url}'`;
    const py = `import io\n\nimport httpx\nimport numpy as np\n\nres = httpx.get(${JSON.stringify(url)}, headers={"Accept": "application/x-npy"})\nw = np.load(io.BytesIO(res.content))`;
    const block = (title, text) => {
      const pre = h("pre.code", { tabindex: 0 }, text);
      const copy = h("button", { type: "button", onclick: () => navigator.clipboard?.writeText(text).then(() => { copy.textContent = "Copied"; }, () => {}) }, "Copy");
      return h("div.snippet", { "data-snippet": title }, h("div.snippet-head", {}, h("strong", {}, title), copy), pre);
    };
    return h("div.snippets", {}, block("TF.js", tfjs), block("curl", curl), block("Python", py));
  }
}
