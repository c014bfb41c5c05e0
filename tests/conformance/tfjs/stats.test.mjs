// TensorFlow.js 4.22 as the reference for `"defaults": "tfjs"`: for models covering every
// weighted layer type, TF.js builds the served model.json's topology with its own initializers
// (every *_initializer field removed, so TF.js's defaults apply) and each of its weights is
// compared with ours from weights.bin: random weights have the same std (within Z combined
// standard errors, from each sample's size and kurtosis) and the same reach (largest |value|:
// both schemes here are bounded), constants are equal, recurrent kernels are orthogonal as a
// whole (W W^T = I) and not per gate. TF.js's own orthogonal init is slow: units stay small.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

const BASE = process.env.INITLAB_URL;
assert.ok(BASE, "set INITLAB_URL to the base URL of a running initlab");

const Z = 5; // two-sided p ~ 6e-7 per check
const TRUNC_STD = 0.87962566103423978; // std of a standard normal truncated to (-2, 2)

const MODELS = {
  dense: {
    input_shape: [128],
    layers: [
      { type: "dense", units: 512, activation: "relu" },
      { type: "batch_normalization" },
      { type: "layer_normalization" },
      { type: "dense", units: 96 },
    ],
  },
  conv: {
    input_shape: [12, 12, 32],
    layers: [
      { type: "conv2d", filters: 64, kernel_size: 3 },
      { type: "batch_normalization" },
    ],
  },
  sequence: {
    input_shape: [10],
    layers: [
      { type: "embedding", input_dim: 1000, output_dim: 64 },
      { type: "conv1d", filters: 256, kernel_size: 3, padding: "same" },
      { type: "lstm", units: 16, return_sequences: true },
    ],
  },
  gru: { input_shape: [4, 256], layers: [{ type: "gru", units: 16 }] },
  simple_rnn: { input_shape: [4, 512], layers: [{ type: "simple_rnn", units: 16 }] },
};
const WEIGHTED = [
  "dense", "conv1d", "conv2d", "embedding", "simple_rnn", "lstm", "gru",
  "batch_normalization", "layer_normalization",
];

async function post(body) {
  const res = await fetch(`${BASE}/v1/models`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return res.json();
}

// Ours from weights.bin (manifest order) and TF.js's own, both by weight name.
async function bothWeights(spec) {
  const model = await post({ seed: 5, defaults: "tfjs", ...spec });
  const artifact = await (await fetch(`${BASE}${model.links.model_json}`)).json();
  const blob = new Float32Array(
    await (await fetch(`${BASE}${model.links.weights_bin}`)).arrayBuffer(),
  );
  const ours = new Map();
  let offset = 0;
  for (const w of model.weights) {
    const size = w.shape.reduce((a, b) => a * b, 1);
    ours.set(w.name, { shape: w.shape, values: blob.subarray(offset, offset + size) });
    offset += size;
  }
  assert.equal(offset, blob.length);
  const topology = structuredClone(artifact.modelTopology);
  for (const layer of topology.config.layers) {
    for (const key of Object.keys(layer.config)) {
      if (key.endsWith("_initializer")) delete layer.config[key];
    }
  }
  const own = await tf.models.modelFromJSON({ modelTopology: topology });
  const theirs = new Map(
    own.weights.map((w) => [w.originalName, { shape: w.shape, values: w.read().dataSync() }]),
  );
  own.dispose();
  return { ours, theirs };
}

function stats(values) {
  const n = values.length;
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  let m2 = 0;
  let m4 = 0;
  let reach = 0;
  for (const v of values) {
    const d = (v - mean) ** 2;
    m2 += d;
    m4 += d * d;
    reach = Math.max(reach, Math.abs(v));
  }
  m2 /= n;
  m4 /= n;
  const std = Math.sqrt(m2);
  // std of the sample std: std * sqrt((kurtosis - 1) / (4n))
  const se = m2 > 0 ? std * Math.sqrt((m4 / (m2 * m2) - 1) / (4 * n)) : 0;
  return { n, mean, std, se, reach };
}

// Every way `a` (ours) and `b` (the reference) disagree as draws of one bounded scheme.
function disagreements(a, b) {
  const sa = stats(a);
  const sb = stats(b);
  const out = [];
  const tol = Z * Math.hypot(sa.se, sb.se);
  if (Math.abs(sa.std - sb.std) > tol) out.push(`std ${sa.std} vs ${sb.std} (± ${tol})`);
  if (Math.abs(sa.mean) > (Z * sa.std) / Math.sqrt(sa.n)) out.push(`mean ${sa.mean}`);
  // Both maxima are within 150/n of the bound (uniform: 30/n) but for p < 1e-6.
  const reach = sa.reach / sb.reach;
  if (Math.abs(reach - 1) > 300 / Math.min(sa.n, sb.n)) out.push(`reach ratio ${reach}`);
  return out;
}

// max |Q^T Q - I| along the short side of the (prod(shape[:-1]), shape[-1]) matrix.
function orthogonalError(values, rows, cols, col0 = 0, width = cols) {
  const short = Math.min(rows, width);
  const long = Math.max(rows, width);
  const at = rows >= width
    ? (i, k) => values[k * cols + col0 + i] // columns of the block
    : (i, k) => values[i * cols + col0 + k]; // rows of the block
  let err = 0;
  for (let i = 0; i < short; i++) {
    for (let j = i; j < short; j++) {
      let dot = 0;
      for (let k = 0; k < long; k++) dot += at(i, k) * at(j, k);
      err = Math.max(err, Math.abs(dot - (i === j ? 1 : 0)));
    }
  }
  return err;
}

test("the models cover every weighted layer type", () => {
  const used = new Set(Object.values(MODELS).flatMap((m) => m.layers.map((l) => l.type)));
  for (const type of WEIGHTED) assert.ok(used.has(type), type);
});

for (const [label, spec] of Object.entries(MODELS)) {
  test(`${label}: our tfjs defaults draw like TF.js's own initializers`, async () => {
    const { ours, theirs } = await bothWeights(spec);
    assert.deepEqual([...theirs.keys()].sort(), [...ours.keys()].sort());
    for (const [name, mine] of ours) {
      const ref = theirs.get(name);
      assert.deepEqual(ref.shape, mine.shape, name);
      const [rows, cols] = [mine.values.length / mine.shape.at(-1), mine.shape.at(-1)];
      if (stats(ref.values).std === 0) {
        // zeros, ones (BN gamma / moving variance), the LSTM bias without unit_forget_bias
        for (let i = 0; i < ref.values.length; i++) {
          if (!Object.is(mine.values[i], ref.values[i])) {
            assert.fail(`${name}[${i}]: ${mine.values[i]} !== TF.js ${ref.values[i]}`);
          }
        }
      } else if (name.endsWith("/recurrent_kernel")) {
        // One orthogonal (units, gates * units) matrix in both: W W^T = I; a gate block's
        // rows are not orthonormal (their squared norms are about 1 / gates).
        const gates = cols / rows;
        for (const [who, w] of [["ours", mine], ["TF.js", ref]]) {
          const err = orthogonalError(w.values, rows, cols);
          assert.ok(err < 1e-5, `${who} ${name}: |W W^T - I| = ${err}`);
          for (let g = 0; gates > 1 && g < gates; g++) {
            const block = orthogonalError(w.values, rows, cols, g * rows, rows);
            assert.ok(block > 0.3, `${who} ${name} gate ${g}: |B B^T - I| = ${block}`);
          }
        }
      } else {
        const found = disagreements(mine.values, ref.values);
        assert.deepEqual(found, [], `${name}: ${found}`);
        // The same comparison rejects a 0.88 rescale (a Keras-style truncation correction).
        for (const f of [TRUNC_STD, 1 / TRUNC_STD]) {
          const scaled = mine.values.map((v) => v * f);
          assert.notDeepEqual(disagreements(scaled, ref.values), [], `${name} × ${f}`);
        }
      }
    }
  });
}

test("LSTM bias: forget-gate ones only with unit_forget_bias, TF.js's own and ours", async () => {
  const lstm = { input_shape: [3, 2], layers: [{ type: "lstm", units: 16 }] };
  for (const [spec, forget] of [
    [lstm, 0],
    [{ ...lstm, layers: [{ ...lstm.layers[0], unit_forget_bias: true }] }, 1],
    [{ ...lstm, defaults: "keras" }, 1],
  ]) {
    const { ours, theirs } = await bothWeights(spec);
    for (const w of [ours.get("lstm/bias"), theirs.get("lstm/bias")]) {
      const want = Array.from({ length: 64 }, (_, i) => (i >= 16 && i < 32 ? forget : 0));
      assert.deepEqual(Array.from(w.values), want, JSON.stringify(spec));
    }
  }
});

test("Keras's Dense kernel defaults are told apart from TF.js's glorotNormal", async () => {
  // glorot_uniform (Keras's default) and glorot_normal (Keras's, with the 0.88 correction)
  // have another std or reach than TF.js's uncorrected glorotNormal at this size.
  for (const kernel_initializer of ["glorot_uniform", "glorot_normal"]) {
    const layers = [{ type: "dense", units: 512, kernel_initializer }];
    const { ours, theirs } = await bothWeights({ input_shape: [128], layers });
    const [mine, ref] = [ours, theirs].map((m) => m.get("dense/kernel").values);
    const found = disagreements(mine, ref);
    assert.notDeepEqual(found, [], kernel_initializer);
  }
});
