// TensorFlow.js against a running initlab (INITLAB_URL): models posted to /v1/models load with
// tf.loadLayersModel straight from the server, every weight equal bit for bit to weights.bin
// and the .npz manifest, and predict runs. The models together cover every layer type.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

import { BASE, assertServedWeights, post } from "./served.mjs";

const MODELS = {
  mlp: {
    input_shape: [784],
    seed: 1,
    layers: [
      { type: "dense", units: 256, activation: "relu" },
      { type: "dropout", rate: 0.2 },
      { type: "dense", units: 128, activation: "relu", kernel_initializer: "he_normal" },
      { type: "dense", units: 10, activation: "softmax" },
    ],
  },
  cnn: {
    input_shape: [28, 28, 1],
    seed: 2,
    defaults: "tfjs",
    layers: [
      { type: "conv2d", filters: 8, kernel_size: 3, activation: "relu" },
      { type: "batch_normalization" },
      { type: "conv2d", filters: 4, kernel_size: [3, 2], strides: 2, padding: "same" },
      { type: "flatten" },
      { type: "dense", units: 10 },
      { type: "activation", activation: "softmax" },
    ],
  },
  sequence: {
    input_shape: [12],
    seed: 3,
    layers: [
      { type: "embedding", input_dim: 50, output_dim: 8 },
      { type: "conv1d", filters: 6, kernel_size: 3, padding: "same" },
      { type: "lstm", units: 8, return_sequences: true },
      { type: "gru", units: 4, return_sequences: true, reset_after: false },
      { type: "simple_rnn", units: 4, return_sequences: true },
      { type: "layer_normalization" },
      { type: "flatten" },
      { type: "dense", units: 3, bias_initializer: "ones" },
    ],
  },
  lstm256: {
    input_shape: [20, 64],
    seed: 4,
    layers: [{ type: "lstm", units: 256 }, { type: "dense", units: 10 }],
  },
};

for (const [label, spec] of Object.entries(MODELS)) {
  test(`${label}: tf.loadLayersModel gives the served weights bit for bit`, async () => {
    const model = await post(spec);
    const loaded = await tf.loadLayersModel(`${BASE}${model.links.model_json}`);
    await assertServedWeights(loaded, model);

    const x = tf.zeros([2, ...spec.input_shape]);
    const y = loaded.predict(x);
    assert.equal(y.shape[0], 2);
    assert.ok(y.dataSync().every(Number.isFinite), `${label}: non-finite output`);
  });
}

test("the LSTM's forget-gate bias is ones and its recurrent kernel orthogonal", async () => {
  const model = await post(MODELS.lstm256);
  const loaded = await tf.loadLayersModel(`${BASE}${model.links.model_json}`);
  const byName = new Map(loaded.weights.map((w) => [w.originalName, w.read()]));
  const bias = byName.get("lstm/bias").dataSync();
  for (let i = 0; i < 1024; i++) assert.equal(bias[i], i >= 256 && i < 512 ? 1 : 0, `bias[${i}]`);
  // (256, 1024) with orthonormal rows: W W^T = I.
  const w = byName.get("lstm/recurrent_kernel");
  const gram = tf.matMul(w, w, false, true);
  const err = tf.max(tf.abs(tf.sub(gram, tf.eye(256)))).dataSync()[0];
  assert.ok(err < 1e-4, `|W W^T - I| = ${err}`);
});

test("a GRU with reset_after: true has no model.json, a clear problem instead", async () => {
  const model = await post({ input_shape: [5, 3], layers: [{ type: "gru", units: 2 }], seed: 1 });
  const res = await fetch(`${BASE}${model.links.model_json}`);
  assert.equal(res.status, 422);
  assert.equal(res.headers.get("Content-Type"), "application/problem+json");
  const problem = await res.json();
  assert.match(problem.detail, /^layers\[0\]\.reset_after: TF\.js 4\.22 cannot run a GRU/);
});
