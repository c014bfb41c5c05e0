// The initializer catalog (GET /v1/initializers), fetched once, and a <datalist> of every
// accepted spelling so any alias can be typed and searched.

import { getJSON } from "./api.js";
import { h } from "./util.js";

let catalog = null;

export async function initializers() {
  if (!catalog) catalog = getJSON("/v1/initializers").then((body) => body.initializers);
  try {
    return await catalog;
  } catch (err) {
    catalog = null;
    throw err;
  }
}

/** A <datalist id=...> with one option per alias, labelled with its canonical name. */
export function aliasList(id, entries) {
  const list = h(`datalist#${id}`);
  for (const entry of entries) {
    for (const alias of entry.aliases) {
      list.append(h("option", { value: alias }, alias === entry.name ? entry.family : `→ ${entry.name}`));
    }
  }
  return list;
}

/** The catalog entry a name or alias refers to (case as the API spells it), or null. */
export function lookup(entries, name) {
  return entries.find((e) => e.name === name || e.aliases.includes(name)) || null;
}
