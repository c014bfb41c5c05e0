// The public HTTP API, from the browser: JSON calls, downloads and the SSE stream, with the
// API key (entered once, kept in sessionStorage) sent as X-API-Key when there is one.

const KEY_STORAGE = "initlab.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** A problem+json answer (RFC 9457): status, title, detail and the field errors. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, "X-API-Key": key } : { ...headers };
}

async function problemOf(res) {
  try {
    return await res.json();
  } catch {
    return { title: res.statusText || `HTTP ${res.status}`, status: res.status };
  }
}

/** fetch with the key; a non-2xx answer throws an ApiError. */
export async function request(path, { method = "GET", body, headers, signal } = {}) {
  const init = { method, headers: withKey(headers), signal };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, init);
  if (!res.ok) throw new ApiError(res.status, await problemOf(res));
  return res;
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

/** Save what ``path`` answers as a file (the key goes in the header, so no plain link). */
export async function download(path, filename) {
  const blob = await (await request(path)).blob();
  saveBlob(blob, filename);
}

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Parse one SSE block ("id: …\nevent: …\ndata: …") into {id, event, data}. */
export function parseEvent(block) {
  const out = { id: null, event: "message", data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") out.id = value;
    else if (field === "event") out.event = value;
    else if (field === "data") data.push(value);
  }
  out.data = data.join("\n");
  return out;
}

/**
 * Read a Server-Sent Events stream with fetch (EventSource cannot send the key header).
 * Calls onEvent({id, event, data}) for each event with data; resolves when the stream
 * closes, rejects on a network error or a non-2xx answer (ApiError).
 */
export async function readEvents(path, { lastEventId, signal, onEvent }) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const res = await request(path, { headers, signal });
  if (!res.body) throw new Error("this browser cannot stream a response body");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = parseEvent(block);
      if (event.data) onEvent(event);
    }
  }
}
