// New comparison: a job body built from a preset or from scratch, shown as JSON (editable;
// the JSON is what is sent) and as curl; a problem+json answer is shown at the fields it names.

import { ApiError, apiKey, getJSON, request } from "./api.js";
import { aliasList, initializers, lookup } from "./catalog.js";
import { errorBox, h, shellQuote } from "./util.js";

const SCRATCH = {
  dataset: { name: "circles", train_size: 300, validation_size: 100, noise: 0.05 },
  model: { hidden_layers: [10, 5], activation: "relu" },
  training: { optimizer: { name: "adam", learning_rate: 0.01 }, batch_size: 32, epochs: 5 },
  schemes: [
    { label: "all zeros", initializer: "zeros" },
    { label: "He normal", initializer: "he_normal" },
  ],
  repeats: 2,
  seed: 0,
};
// Suggestions only: the API checks the names (app/training), and its errors name the field.
const ACTIVATIONS = ["relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid", "linear"];
const OPTIMIZERS = ["sgd", "adam", "adamw", "rmsprop"];

function getPath(obj, path) {
  return path.reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function setPath(obj, path, value) {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    if (o[k] == null || typeof o[k] !== "object") o[k] = {};
    o = o[k];
  }
  const last = path[path.length - 1];
  if (value === undefined) delete o[last];
  else o[last] = value;
}

// A number field's value: absent when empty; text that is not a number is sent as it is, so
// the server's 422 names the field (Number("abc") would be NaN, which JSON sends as null).
const num = (text) => {
  const t = text.trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
};
const ref = (text) => {
  const t = text.trim();
  if (t.startsWith("{")) {
    try { return JSON.parse(t); } catch { return t; }
  }
  return t;
};
const refText = (v) => (v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));

export class FormView {
  constructor(root) {
    this.root = root;
    this.body = structuredClone(SCRATCH);
    this.fields = []; // [{el, path, read, write}]
  }

  async start() {
    this.root.replaceChildren(h("p", { "aria-busy": "true" }, "Loading presets and the catalog…"));
    try {
      const [presets, catalog, datasets] = await Promise.all([
        getJSON("/v1/presets"),
        initializers(),
        getJSON("/v1/datasets"),
      ]);
      this.presets = presets.presets;
      this.catalog = catalog;
      this.datasets = datasets.datasets;
    } catch (err) {
      this.root.replaceChildren(h("h2", {}, "New comparison"), errorBox(err));
      return;
    }
    this.render();
  }

  stop() {}

  field(label, path, { type = "text", list, read = (t) => t, write = (v) => v ?? "", hint } = {}) {
    const id = `f-${path.join("-")}`;
    const el = h("input", { id, type, list, dataset: { path: path.join(".") } });
    if (type === "number") el.step = "any";
    const f = { el, path, read, write };
    el.addEventListener("input", () => {
      setPath(this.body, path, read(el.value));
      this.showJson();
    });
    this.fields.push(f);
    return h("div.field", {}, h("label", { for: id }, label), el, hint ? h("small", {}, hint) : null);
  }

  render() {
    this.fields = [];
    const preset = h(
      "select#preset",
      { onchange: (e) => this.load(e.target.value) },
      h("option", { value: "" }, "from scratch"),
      ...this.presets.map((p) => h("option", { value: p.name }, `${p.name} (${p.runs} runs)`)),
    );
    this.presetInfo = h("p.hint");
    const datasets = h("datalist#dataset-names", {}, this.datasets.map((d) => h("option", { value: d.name }, d.description)));
    const acts = h("datalist#activation-names", {}, ACTIVATIONS.map((a) => h("option", { value: a })));
    const opts = h("datalist#optimizer-names", {}, OPTIMIZERS.map((a) => h("option", { value: a })));
    this.mode = h("select#f-mode", { onchange: () => this.switchMode() },
      h("option", { value: "epochs" }, "epochs"), h("option", { value: "steps" }, "steps"));
    this.modeCount = h("input#f-count", { type: "number", min: 1, dataset: { path: "training.epochs" } });
    this.modeCount.addEventListener("input", () => {
      setPath(this.body, ["training", this.mode.value], num(this.modeCount.value));
      this.showJson();
    });
    this.schemes = h("div.schemes", { role: "group", "aria-label": "Schemes" });
    this.json = h("textarea#job-json", { rows: 18, spellcheck: false, "aria-describedby": "json-state" });
    this.jsonState = h("small#json-state");
    this.json.addEventListener("input", () => this.readJson());
    this.curl = h("pre.curl", { "data-testid": "curl" });
    this.errors = h("div.form-errors", { "aria-live": "assertive" });
    this.submitBtn = h("button.primary", { type: "submit" }, "Submit job");
    const form = h(
      "form.new-job",
      { onsubmit: (e) => { e.preventDefault(); this.submit(); }, novalidate: true },
      h("div.field", {}, h("label", { for: "preset" }, "Start from "), preset), this.presetInfo,
      h("fieldset", {}, h("legend", {}, "Data and network"),
        this.field("dataset", ["dataset", "name"], { list: "dataset-names" }),
        this.field("train size", ["dataset", "train_size"], { type: "number", read: num }),
        this.field("validation size", ["dataset", "validation_size"], { type: "number", read: num }),
        this.field("hidden layers", ["model", "hidden_layers"], {
          read: (t) => t.split(",").map((x) => x.trim()).filter(Boolean).map(Number),
          write: (v) => (Array.isArray(v) ? v.join(", ") : ""),
          hint: "comma-separated widths, e.g. 256, 128",
        }),
        this.field("activation", ["model", "activation"], { list: "activation-names", read: ref, write: refText })),
      h("fieldset", {}, h("legend", {}, "Training"),
        this.field("optimizer", ["training", "optimizer", "name"], { list: "optimizer-names" }),
        this.field("learning rate", ["training", "optimizer", "learning_rate"], { type: "number", read: num }),
        this.field("batch size", ["training", "batch_size"], {
          read: (t) => (t.trim() === "full" ? "full" : num(t)), hint: "a number, or full",
        }),
        h("div.field", {}, h("label", { for: "f-mode" }, "train for"), this.mode,
          h("label.sr-only", { for: "f-count" }, "how many"), this.modeCount),
        this.field("repeats", ["repeats"], { type: "number", read: num }),
        this.field("seed", ["seed"], { type: "number", read: num })),
      h("fieldset", {}, h("legend", {}, "Schemes"),
        this.schemes,
        h("button", { type: "button", onclick: () => this.addScheme() }, "Add scheme")),
      h("fieldset", {}, h("legend", {}, "Request"),
        h("label", { for: "job-json" }, "JSON body (editable: this is what is sent)"), this.json, this.jsonState,
        h("p", {}, "curl"), this.curl),
      this.errors,
      this.submitBtn,
    );
    this.root.replaceChildren(h("h2", {}, "New comparison"), datasets, acts, opts,
      aliasList("initializer-names", this.catalog), form);
    this.fill();
  }

  load(name) {
    const preset = this.presets.find((p) => p.name === name);
    this.body = structuredClone(preset ? preset.body : SCRATCH);
    this.presetInfo.textContent = preset ? `${preset.description} Expected: ${preset.expected || "–"}` : "";
    this.fill();
  }

  switchMode() {
    const t = this.body.training || (this.body.training = {});
    const other = this.mode.value === "epochs" ? "steps" : "epochs";
    const count = t[other] ?? num(this.modeCount.value);
    delete t[other];
    t[this.mode.value] = count;
    this.modeCount.dataset.path = `training.${this.mode.value}`;
    this.fill();
  }

  addScheme() {
    const schemes = this.body.schemes || (this.body.schemes = []);
    schemes.push({ label: `scheme ${schemes.length + 1}`, initializer: "glorot_uniform" });
    this.fill();
    this.schemes.querySelector(`[data-path="schemes.${schemes.length - 1}.initializer"]`)?.focus();
  }

  renderSchemes() {
    const rows = (this.body.schemes || []).map((scheme, i) => {
      let s = scheme;
      const label = h("input", { id: `scheme-${i}-label`, value: s.label ?? "", dataset: { path: `schemes.${i}.label` } });
      const init = h("input", {
        id: `scheme-${i}-initializer`, list: "initializer-names", value: refText(s.initializer),
        dataset: { path: `schemes.${i}.initializer` }, autocomplete: "off",
      });
      label.addEventListener("input", () => { this.body.schemes[i].label = label.value; this.showJson(); });
      const hint = h("small.scheme-hint", { id: `scheme-${i}-hint` });
      const explain = () => {
        const entry = typeof s.initializer === "string" ? lookup(this.catalog, s.initializer) : null;
        hint.textContent = entry ? `${entry.name}: ${entry.formula}` : "";
      };
      init.setAttribute("aria-describedby", hint.id);
      init.addEventListener("input", () => {
        this.body.schemes[i].initializer = ref(init.value);
        s = this.body.schemes[i];
        explain();
        this.showJson();
      });
      explain();
      const remove = h("button", {
        type: "button", "aria-label": `Remove scheme ${i + 1}`,
        onclick: () => { this.body.schemes.splice(i, 1); this.fill(); },
      }, "Remove");
      return h("div.scheme-row", { dataset: { path: `schemes.${i}` } },
        h("label", { for: `scheme-${i}-label` }, `${i + 1}. label`), label,
        h("label", { for: `scheme-${i}-initializer` }, "initializer"), init, remove, hint);
    });
    this.schemes.replaceChildren(...rows);
  }

  /** The form's inputs from this.body. */
  fill() {
    for (const f of this.fields) f.el.value = f.write(getPath(this.body, f.path));
    const t = this.body.training || {};
    this.mode.value = t.steps != null && t.epochs == null ? "steps" : "epochs";
    this.modeCount.dataset.path = `training.${this.mode.value}`;
    this.modeCount.value = t[this.mode.value] ?? "";
    this.renderSchemes();
    this.showJson();
  }

  showJson() {
    this.json.value = JSON.stringify(this.body, null, 2);
    this.jsonState.textContent = "";
    this.showCurl();
  }

  readJson() {
    try {
      const body = JSON.parse(this.json.value);
      if (body === null || typeof body !== "object" || Array.isArray(body)) throw new Error("the body must be a JSON object");
      this.body = body;
      this.jsonState.textContent = "";
      const keep = this.json.value;
      this.fill();
      this.json.value = keep; // keep the user's own formatting
    } catch (err) {
      this.jsonState.textContent = `Not valid JSON yet: ${err.message}`;
    }
    this.showCurl();
  }

  showCurl() {
    let compact = this.json.value;
    try { compact = JSON.stringify(JSON.parse(compact)); } catch { /* shown as typed */ }
    const key = apiKey() ? ` \\\n  -H "X-API-Key: $INITLAB_API_KEY"` : "";
    this.curl.textContent = `curl -X POST ${location.origin}/v1/jobs \\\n  -H 'Content-Type: application/json'${key} \\\n  -d ${shellQuote(compact)}`;
  }

  clearErrors() {
    this.errors.replaceChildren();
    for (const el of this.root.querySelectorAll(".field-error")) el.remove();
    for (const el of this.root.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-errormessage");
    }
  }

  /** The input for a problem's loc (["schemes", 1, "initializer"]), or its nearest parent. */
  target(loc) {
    const path = loc[0] === "body" ? loc.slice(1) : loc;
    for (let n = path.length; n > 0; n--) {
      const el = this.root.querySelector(`[data-path="${CSS.escape(path.slice(0, n).join("."))}"]`);
      if (el) return el;
    }
    return null;
  }

  showProblem(err) {
    this.errors.append(errorBox(err));
    err.errors.forEach((e, i) => {
      const loc = Array.isArray(e.loc) ? e.loc : [];
      const el = this.target(loc);
      const got = e.input !== undefined ? ` (got ${JSON.stringify(e.input)})` : "";
      const msg = h(`p.field-error#field-error-${i}`, { role: "alert" }, `${loc.join(".")}: ${e.msg}${got}`);
      if (!el) return;
      el.setAttribute("aria-invalid", "true");
      el.setAttribute("aria-errormessage", msg.id);
      (el.closest(".field, .scheme-row") || el).after(msg);
    });
  }

  async submit() {
    this.clearErrors();
    let body;
    try {
      body = JSON.parse(this.json.value);
    } catch (err) {
      this.errors.append(errorBox(new Error(`The JSON body is not valid: ${err.message}`)));
      this.json.focus();
      return;
    }
    this.submitBtn.disabled = true;
    try {
      const res = await request("/v1/jobs", { method: "POST", body });
      const job = await res.json();
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      if (err instanceof ApiError) this.showProblem(err);
      else this.errors.append(errorBox(err));
      this.root.querySelector("[aria-invalid]")?.focus();
    } finally {
      this.submitBtn.disabled = false;
    }
  }
}
