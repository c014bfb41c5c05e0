// DOM and formatting helpers shared by the views.

/** h("tag#id.class", {attr: value, onclick: fn}, ...children): an element. */
export function h(spec, attrs = {}, ...children) {
  const parts = spec.match(/^[^#.]*|[#.][^#.]+/g);
  const el = document.createElement(parts[0] || "div");
  for (const part of parts.slice(1)) {
    if (part[0] === "#") el.id = part.slice(1);
    else el.classList.add(part.slice(1));
  }
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (value !== 0 && (Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3)) {
    return value.toExponential(2);
  }
  return value.toFixed(digits);
}

/**
 * A chart's tick or legend number: integers whole up to 1e15 (step 12345, not 1.234e+4);
 * other values to 4 significant digits (5 from 10,000) without trailing zeros, in the
 * exponent form only outside [1e-3, 1e5).
 */
export function chartNumber(value) {
  if (value === null || value === undefined) return "–";
  if (!Number.isFinite(value)) return String(value);
  const a = Math.abs(value);
  if (Number.isInteger(value) && a < 1e15) return String(value);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return value.toExponential(3);
  return String(Number(value.toPrecision(a >= 1e4 ? 5 : 4)));
}

export function pct(value) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)} %`;
}

export function age(iso, now = Date.now()) {
  if (!iso) return "–";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

export const ACTIVE = new Set(["queued", "running"]);

export function statusBadge(status) {
  return h(`span.badge.status-${status}`, {}, status);
}

export function progressBar(fraction, label) {
  const value = Math.max(0, Math.min(1, fraction || 0));
  return h("progress", { max: 1, value, "aria-label": label, title: pct(value) });
}

/** A problem (ApiError or any Error) as an alert element. */
export function errorBox(err) {
  const box = h("div.error", { role: "alert" });
  const title = err.status ? `${err.status} ${err.problem?.title || ""}` : "Error";
  box.append(h("strong", {}, title), " ", err.message || String(err));
  if (err.status === 401 || err.status === 403) {
    box.append(" ", h("span", {}, "Set the API key with the button at the top."));
  }
  return box;
}

export function shellQuote(text) {
  return `'${String(text).replaceAll("'", "'\\''")}'`;
}
