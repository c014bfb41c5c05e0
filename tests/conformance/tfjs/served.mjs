// Shared by the *.test.mjs files: post a model to a running initlab, and check a loaded TF.js
// model holds the served weights bit for bit.
import assert from "node:assert/strict";

export const BASE = process.env.INITLAB_URL;
assert.ok(BASE, "set INITLAB_URL to the base URL of a running initlab");

export async function post(body) {
  const res = await fetch(`${BASE}/v1/models`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return res.json();
}

// Every weight of `loaded` equals weights.bin of `model` (the POST answer) bit for bit.
export async function assertServedWeights(loaded, model) {
  const blob = new Float32Array(
    await (await fetch(`${BASE}${model.links.weights_bin}`)).arrayBuffer(),
  );
  assert.equal(blob.length, model.params);
  // TF.js holds trainable weights first over the whole model: match them by name.
  const byName = new Map(loaded.weights.map((w) => [w.originalName, w]));
  assert.equal(byName.size, model.weights.length);
  // model.json's manifest names each weight as TF.js does (a TimeDistributed inner layer's
  // weights without the inner name), in the order of model.weights.
  const manifest = (await (await fetch(`${BASE}${model.links.model_json}`)).json())
    .weightsManifest.flatMap((group) => group.weights);
  assert.equal(manifest.length, model.weights.length);
  let offset = 0;
  for (const [k, entry] of model.weights.entries()) {
    const variable = byName.get(manifest[k].name);
    assert.ok(variable, `TF.js has no weight ${manifest[k].name}: ${[...byName.keys()]}`);
    assert.deepEqual(variable.shape, entry.shape, entry.name);
    const got = variable.read().dataSync();
    const want = blob.subarray(offset, offset + got.length);
    offset += got.length;
    for (let i = 0; i < got.length; i++) {
      if (!Object.is(got[i], want[i])) assert.fail(`${entry.name}[${i}]: ${got[i]} !== ${want[i]}`);
    }
  }
  assert.equal(offset, blob.length);
}
