// TensorFlow.js against a running initlab (INITLAB_URL): tensors fetched as JSON and as raw
// bytes are identical, load into tf.tensor with the right shape and dtype, and serve as the
// weights of a tf.layers model.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

const BASE = process.env.INITLAB_URL;
assert.ok(BASE, "set INITLAB_URL to the base URL of a running initlab");

const TYPED = { float32: Float32Array, int32: Int32Array };

async function fetchJson(query) {
  const res = await fetch(`${BASE}/v1/tensors?${query}`, {
    headers: { Accept: "application/json" },
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  return { body, tensor: tf.tensor(body.values, body.shape, body.dtype) };
}

async function fetchBinary(query) {
  const res = await fetch(`${BASE}/v1/tensors?${query}`, {
    headers: { Accept: "application/octet-stream" },
  });
  assert.equal(res.status, 200, await res.clone().text());
  const header = res.headers.get("X-Tensor-Shape");
  const shape = header === "" ? [] : header.split(",").map(Number);
  const dtype = res.headers.get("X-Tensor-Dtype");
  const values = new TYPED[dtype](await res.arrayBuffer());
  return { shape, dtype, headers: res.headers, tensor: tf.tensor(values, shape, dtype) };
}

function assertIdentical(a, b) {
  assert.deepEqual(a.shape, b.shape);
  assert.equal(a.dtype, b.dtype);
  const x = a.dataSync();
  const y = b.dataSync();
  assert.equal(x.length, y.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`element ${i}: ${x[i]} !== ${y[i]}`);
  }
}

function std(t) {
  return tf.tidy(() => tf.moments(t).variance.sqrt().dataSync()[0]);
}

test("JSON and binary give the same tensor", async () => {
  for (const query of [
    "shape=784,256&initializer=he_normal&seed=42",
    "shape=3,3,16,32&initializer=glorotUniform&seed=7",
    "shape=64,64&initializer=orthogonal&seed=1",
    "shape=5,4&initializer=ones&dtype=int32&seed=0",
  ]) {
    const json = await fetchJson(query);
    const bin = await fetchBinary(query);
    assert.deepEqual(bin.shape, json.body.shape);
    assert.equal(bin.dtype, json.body.dtype);
    assert.equal(Number(bin.headers.get("X-Seed")), json.body.seed);
    assertIdentical(json.tensor, bin.tensor);
  }
});

test("fetched kernels drive a tf.layers model", async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 256, inputShape: [784], activation: "relu" }),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  });
  const k1 = (await fetchBinary("shape=784,256&initializer=he_normal&seed=42")).tensor;
  const b1 = (await fetchJson("shape=256&initializer=zeros&seed=0")).tensor;
  const k2 = (await fetchBinary("shape=256,10&initializer=glorot_uniform&seed=43")).tensor;
  const b2 = (await fetchJson("shape=10&initializer=zeros&seed=0")).tensor;
  model.setWeights([k1, b1, k2, b2]);
  assertIdentical(model.getWeights()[0], k1);
  assertIdentical(model.getWeights()[2], k2);

  const x = tf.randomUniform([8, 784], 0, 1, "float32", 123);
  const y = model.predict(x);
  assert.deepEqual(y.shape, [8, 10]);
  const manual = tf.tidy(() => tf.softmax(tf.relu(x.matMul(k1).add(b1)).matMul(k2).add(b2)));
  const got = y.dataSync();
  const want = manual.dataSync();
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5);
  const rowSums = tf.sum(y, 1).dataSync();
  for (const s of rowSums) assert.ok(Math.abs(s - 1) < 1e-5);
  // He-initialized ReLU layers keep the activations alive (no dead network).
  const hidden = tf.relu(x.matMul(k1)).dataSync();
  assert.ok(hidden.some((v) => v > 0));
});

test("the tfjs form of the response is accepted by TF.js and has the same spread", async () => {
  // glorot_uniform and he_uniform: TF.js draws these correctly, so its own initializer built
  // from initlab's tfjs config must match initlab's tensor statistically.
  for (const scheme of ["glorot_uniform", "he_uniform", "lecun_uniform"]) {
    const { body, tensor } = await fetchJson(`shape=784,256&initializer=${scheme}&seed=5`);
    assert.equal(body.tfjs.className, "VarianceScaling");
    const init = tf.initializers.varianceScaling(body.tfjs.config);
    const theirs = init.apply([784, 256], "float32");
    const ours = std(tensor);
    assert.ok(Math.abs(ours / std(theirs) - 1) < 0.02, `${scheme}: ${ours} vs ${std(theirs)}`);
    const limit = Math.abs(tf.max(tf.abs(theirs)).dataSync()[0]);
    assert.ok(tf.max(tf.abs(tensor)).dataSync()[0] <= limit * 1.001, scheme);
  }
});

test("cached GETs revalidate with the ETag", async () => {
  const url = `${BASE}/v1/tensors?shape=16,16&initializer=heNormal&seed=9`;
  const first = await fetch(url);
  const etag = first.headers.get("ETag");
  assert.ok(etag);
  const again = await fetch(url, { headers: { "If-None-Match": etag } });
  assert.equal(again.status, 304);
});
