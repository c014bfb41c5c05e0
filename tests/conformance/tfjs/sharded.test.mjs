// TensorFlow.js against a running initlab (INITLAB_URL): a model over 4 MiB lists its weights
// as 4 MiB shards (group1-shard{i}of{n}.bin) in model.json; tf.loadLayersModel fetches them
// (all at once) straight from the server and holds every weight bit for bit as weights.npz,
// read here with a zip and .npy reader of its own.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

const BASE = process.env.INITLAB_URL;
assert.ok(BASE, "set INITLAB_URL to the base URL of a running initlab");

// 784 -> 2048 -> 1024 -> 10: 14.6 MiB of float32, 4 shards, kernels straddling their edges.
const MLP = {
  input_shape: [784],
  seed: 21,
  layers: [
    { type: "dense", units: 2048, activation: "relu" },
    { type: "dense", units: 1024, activation: "relu", kernel_initializer: "he_normal" },
    { type: "dense", units: 10, activation: "softmax" },
  ],
};

async function post(body) {
  const res = await fetch(`${BASE}/v1/models`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return res.json();
}

// The members of an uncompressed zip (from its central directory), each .npy parsed into
// { shape, data: Float32Array }. Only what the .npz of one float32 array per weight needs.
function readNpz(buffer) {
  const view = new DataView(buffer);
  let end = buffer.byteLength - 22;
  while (view.getUint32(end, true) !== 0x06054b50) end -= 1;
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const arrays = new Map();
  for (let k = 0; k < count; k++) {
    assert.equal(view.getUint32(at, true), 0x02014b50);
    assert.equal(view.getUint16(at + 10, true), 0, "stored, not deflated");
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const skip = nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(new Uint8Array(buffer, at + 46, nameLength));
    at += 46 + skip;
    const data = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const headerLength = view.getUint16(data + 8, true);
    const header = new TextDecoder().decode(new Uint8Array(buffer, data + 10, headerLength));
    assert.match(header, /'descr': '<f4', 'fortran_order': False/);
    const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(",").filter((s) => s.trim()).map(Number);
    const bytes = buffer.slice(data + 10 + headerLength, data + size);
    arrays.set(name.replace(/\.npy$/, ""), { shape, data: new Float32Array(bytes) });
  }
  return arrays;
}

test("a sharded model loads from the server with the weights of weights.npz", async () => {
  const model = await post(MLP);
  const shards = model.links.weights_shards;
  assert.equal(shards.length, Math.ceil((4 * model.params) / (4 << 20)));
  assert.ok(shards.length >= 4);

  // tf.io.http with a fetch that records what TF.js asks for and how many are in flight.
  const asked = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const fetchFunc = async (url, init) => {
    asked.push(new URL(url).pathname);
    inFlight += 1;
    mostInFlight = Math.max(mostInFlight, inFlight);
    try {
      return await fetch(url, init);
    } finally {
      inFlight -= 1;
    }
  };
  const loaded = await tf.loadLayersModel(tf.io.http(`${BASE}${model.links.model_json}`, { fetchFunc }));
  assert.deepEqual(asked, [model.links.model_json, ...shards]);
  assert.ok(mostInFlight > 1, `TF.js fetched the shards one by one (${mostInFlight} at once)`);

  const npz = readNpz(await (await fetch(`${BASE}${model.links.npz}`)).arrayBuffer());
  assert.equal(npz.size, model.weights.length);
  const byName = new Map(loaded.weights.map((w) => [w.originalName, w]));
  for (const entry of model.weights) {
    const want = npz.get(entry.name);
    assert.ok(want, `no ${entry.name} in weights.npz`);
    assert.deepEqual(want.shape, entry.shape, entry.name);
    const variable = byName.get(entry.name);
    assert.deepEqual(variable.shape, entry.shape, entry.name);
    const got = variable.read().dataSync();
    assert.equal(got.length, want.data.length);
    for (let i = 0; i < got.length; i++) {
      if (!Object.is(got[i], want.data[i])) assert.fail(`${entry.name}[${i}]: ${got[i]} !== ${want.data[i]}`);
    }
  }
  const y = loaded.predict(tf.ones([2, 784]));
  assert.deepEqual(y.shape, [2, 10]);
  assert.ok(y.dataSync().every(Number.isFinite));
});
