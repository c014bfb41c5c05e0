// The jobs list: newest first, a page at a time (GET /v1/jobs, limit + cursor), filtered by
// status on the server (?status=, so pages hold only matching jobs), with progress, schemes,
// best validation accuracy and age; cancel and open.

import { getJSON, request } from "./api.js";
import { ACTIVE, age, errorBox, h, pct, progressBar, statusBadge } from "./util.js";

const PAGE = 20;
const REFRESH_MS = 3000;
const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];

function bestAccuracy(job) {
  let best = null;
  for (const s of job.summary || []) {
    const v = s.final_val_accuracy?.mean;
    if (v !== null && v !== undefined && (best === null || v > best.value)) {
      best = { value: v, label: s.label };
    }
  }
  return best;
}

export class JobsView {
  constructor(root) {
    this.root = root;
    this.cursors = [null]; // the cursor of each page seen, for "newer"
    this.page = 0;
    this.filter = "";
    this.timer = null;
    this.stopped = false;
  }

  start() {
    const filter = h(
      "select#status-filter",
      { onchange: (e) => this.setFilter(e.target.value) },
      h("option", { value: "" }, "all"),
      ...STATUSES.map((s) => h("option", { value: s }, s)),
    );
    this.newer = h("button", { type: "button", onclick: () => this.go(this.page - 1) }, "← Newer");
    this.older = h("button", { type: "button", onclick: () => this.go(this.page + 1) }, "Older →");
    this.body = h("div", { "aria-live": "polite" });
    this.root.replaceChildren(
      h("div.toolbar", {},
        h("h2", {}, "Jobs"),
        h("a.button", { href: "#/new" }, "New comparison"),
        h("label", { for: "status-filter" }, "status "), filter,
        h("button", { type: "button", onclick: () => this.load() }, "Refresh")),
      this.body,
      h("nav.pager", { "aria-label": "Pages" }, this.newer, this.older),
    );
    this.load();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  setFilter(status) {
    // A cursor is a position in one filtered list: a new filter starts again at its first page.
    this.filter = status;
    this.cursors = [null];
    this.page = 0;
    this.load();
  }

  go(page) {
    if (page < 0 || page >= this.cursors.length) return;
    this.page = page;
    this.load();
  }

  async load() {
    clearTimeout(this.timer);
    const cursor = this.cursors[this.page];
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) q.set("cursor", cursor);
    if (this.filter) q.set("status", this.filter);
    const filter = this.filter;
    const at = this.page;
    try {
      const page = await getJSON(`/v1/jobs?${q}`);
      // A load for another filter or page (a poll landing after go()) is stale: the newer
      // one is on its way.
      if (this.stopped || filter !== this.filter || at !== this.page) return;
      this.jobs = page.jobs;
      this.cursors.length = this.page + 1;
      if (page.next_cursor) this.cursors.push(page.next_cursor);
      this.error = null;
    } catch (err) {
      if (this.stopped || filter !== this.filter || at !== this.page) return;
      this.error = err;
    }
    this.render();
    if (!this.error && (this.jobs || []).some((j) => ACTIVE.has(j.status))) {
      this.timer = setTimeout(() => this.load(), REFRESH_MS);
    }
  }

  render() {
    this.newer.disabled = this.page === 0;
    this.older.disabled = this.page + 1 >= this.cursors.length;
    if (this.error) {
      this.body.replaceChildren(errorBox(this.error));
      return;
    }
    const jobs = this.jobs || [];
    if (!jobs.length) {
      // A filtered page may come back empty with a cursor (the server looks at a bounded
      // number of jobs per request): older ones may still match.
      const more = this.page + 1 < this.cursors.length;
      const none = this.filter ? `No ${this.filter} jobs` : "No jobs";
      this.body.replaceChildren(h("p", {}, more ? `${none} on this page; older may follow.` : this.filter ? `${none}.` : "No jobs yet."));
      return;
    }
    const head = ["job", "status", "progress", "schemes", "best val acc", "age", ""];
    this.body.replaceChildren(
      h("div.table-wrap", {}, h("table.jobs", { "data-testid": "jobs-table" },
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, jobs.map((job) => this.row(job))))),
    );
  }

  row(job) {
    const schemes = (job.spec?.schemes || []).map((s) => s.label || JSON.stringify(s.initializer));
    const best = bestAccuracy(job);
    const p = job.progress || {};
    const cancel = ACTIVE.has(job.status)
      ? h("button.danger", { type: "button", onclick: (e) => this.cancel(job, e.target), "aria-label": `Cancel ${job.id}` }, "Cancel")
      : null;
    return h(
      "tr",
      { dataset: { job: job.id, status: job.status } },
      h("td", {}, h("a", { href: `#/jobs/${job.id}` }, job.id)),
      h("td", {}, statusBadge(job.status)),
      h("td", {}, progressBar(p.fraction, `progress of ${job.id}`), ` ${p.runs_done ?? 0}/${p.runs_total ?? 0}`),
      h("td", {}, schemes.join(", ")),
      h("td", {}, best ? `${pct(best.value)} (${best.label})` : "–"),
      h("td", { title: job.created_at }, age(job.created_at)),
      h("td", {}, h("a", { href: `#/jobs/${job.id}` }, "Open"), " ", cancel),
    );
  }

  async cancel(job, button) {
    button.disabled = true;
    try {
      await request(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
    } catch (err) {
      this.body.prepend(errorBox(err));
    }
    this.load();
  }
}
