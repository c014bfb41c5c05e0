// Every TF.js echo initlab gives (the `tfjs` field of a tensor response) loads in TF.js 4.22
// with the same meaning: for every scheme in the catalog, parameter values and shapes TF.js
// handles differently (rank-1 and rank > 5 fans, square-only Identity, stddev 0) and request
// fans, `tfjs` is either a config that TF.js deserializes and draws the same distribution from
// for that shape (the same values for deterministic schemes; the same mean, std and, for
// bounded ones, range for random ones), or null with a `tfjs_unsupported` reason.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

const BASE = process.env.INITLAB_URL;
assert.ok(BASE, "set INITLAB_URL to the base URL of a running initlab");

// 10,000 values: the two samples' std agree to ~1 % (the tolerance below is 5 %).
const DEFAULT_SHAPE = [100, 100];
const SHAPES = {
  dirac: [4, 4, 3],
  delta_orthogonal: [3, 4, 4],
  stft: [8, 1, 5],
  orthogonal: [40, 50], // TF.js's QR takes ~1 s at 100², and warns above 2,000 elements
};
// Parameter values that change what TF.js can express.
const VARIANTS = [
  { name: "variance_scaling", params: { mode: "fan_avg", distribution: "uniform", scale: 2 } },
  { name: "variance_scaling", params: { mode: "fan_out", distribution: "truncated_normal" } },
  { name: "variance_scaling", params: { distribution: "untruncated_normal" } },
  { name: "variance_scaling", params: { mode: "fan_geo_avg" } },
  { name: "glorot_uniform", params: { input_axes: [0], output_axes: [1] } },
  { name: "jax.nn.initializers.he_normal", params: { in_axis: 0, out_axis: 1 } },
  { name: "random_uniform", params: { minval: 0, maxval: 1 } },
  { name: "random_uniform", params: { minval: -1, maxval: 2 } },
  { name: "random_normal", params: { mean: 1, stddev: 0 } },
  { name: "random_normal", params: { mean: 1, stddev: 0.5 } },
  { name: "truncated_normal", params: { stddev: 0.2 } },
  { name: "truncated_normal", params: { mean: 1, stddev: 0 } },
  { name: "orthogonal", params: { gain: 2 } },
  { name: "orthogonal", params: { column_axis: 0 } },
  { name: "constant", params: { value: 0.25 } },
  { name: "identity", params: { gain: 3 } },
];
// Shapes and request fans on which the echo depends: whether one is given is pinned here.
const SHAPE_CASES = [
  { ref: "identity", shape: [3, 5], echo: false }, // TF.js: square matrices only
  { ref: { name: "identity", params: { gain: 2 } }, shape: [5, 5], echo: true },
  { ref: "glorot_uniform", shape: [20000], echo: false }, // TF.js: fans sqrt(20000)
  { ref: "he_uniform", shape: [4, 4, 4, 4, 4, 4], echo: false }, // TF.js: fans 64, not 1024
  { ref: "lecun_uniform", shape: [2, 3, 4, 5, 6, 7], echo: false },
  {
    ref: { name: "variance_scaling", params: { mode: "fan_out", distribution: "uniform" } },
    shape: [9000],
    echo: false,
  },
  { ref: "glorot_uniform", shape: [1, 1, 1, 1, 60, 60], echo: true }, // sqrt(3600) = 60 = Keras's
  { ref: "he_uniform", shape: [1], echo: true }, // sqrt(1) = 1 = Keras's
  { ref: "lecun_uniform", shape: [], echo: true }, // both (1, 1)
  { ref: "glorot_uniform", shape: [3, 3, 32, 64], echo: true },
  { ref: "he_uniform", shape: [5, 40, 50], echo: true },
  { ref: "he_uniform", shape: DEFAULT_SHAPE, fields: { fan_in: 1000 }, echo: false },
  { ref: "glorot_uniform", shape: [64, 32, 3, 3], fields: { layout: "torch" }, echo: false },
  { ref: "random_uniform", shape: [20000], echo: true }, // no fans: any shape
  { ref: "truncated_normal", shape: [3, 3, 3, 3, 3, 3, 3, 3], echo: true },
];

async function fetchTensor(initializer, shape, fields = {}) {
  const res = await fetch(`${BASE}/v1/tensors`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ shape, initializer, seed: 11, ...fields }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

function tfjsKernel(config, shape) {
  // The path a TF.js user takes: the echo as a layer's kernelInitializer (its kernel for a
  // 2-D shape; that initializer applied to any other shape).
  if (shape.length !== 2) {
    return tf.layers.dense({ units: 1, kernelInitializer: config }).kernelInitializer.apply(shape);
  }
  const [rows, cols] = shape;
  const layer = tf.layers.dense({ units: cols, inputShape: [rows], kernelInitializer: config });
  tf.sequential({ layers: [layer] });
  return layer.getWeights()[0];
}

function moments(values) {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  return { mean, std: Math.sqrt(squares / values.length), min, max };
}

// Random draws compared as distributions once there are enough of them.
const MIN_COMPARED = 1000;
const UNBOUNDED = new Set(["RandomNormal", "Orthogonal"]);

function assertSameDistribution(ours, theirs, className, label) {
  const m = moments(ours);
  const t = moments(theirs);
  const at = `${label}: TF.js ${JSON.stringify(t)}, initlab ${JSON.stringify(m)}`;
  assert.ok(Math.abs(t.std - m.std) <= 0.05 * m.std, at);
  assert.ok(Math.abs(t.mean - m.mean) <= 0.06 * m.std, at);
  if (!UNBOUNDED.has(className)) {
    const range = m.max - m.min;
    assert.ok(Math.abs(t.min - m.min) <= 0.03 * range, at);
    assert.ok(Math.abs(t.max - m.max) <= 0.03 * range, at);
  }
}

async function cases() {
  const res = await fetch(`${BASE}/v1/initializers`);
  assert.equal(res.status, 200);
  const { initializers } = await res.json();
  assert.ok(initializers.length >= 35);
  const shapeOf = (ref) => SHAPES[typeof ref === "string" ? ref : ref.name] ?? DEFAULT_SHAPE;
  return [
    ...[...initializers.map((e) => e.name), ...VARIANTS].map((ref) => ({
      ref,
      shape: shapeOf(ref),
    })),
    ...SHAPE_CASES,
  ];
}

test("every non-null tfjs echo draws in TF.js 4.22 what initlab serves for its shape", async () => {
  let loaded = 0;
  let compared = 0;
  let refused = 0;
  for (const { ref, shape, fields, echo } of await cases()) {
    const label = JSON.stringify({ ref, shape, fields });
    const body = await fetchTensor(ref, shape, fields);
    if (echo !== undefined) {
      assert.equal(body.tfjs !== null, echo, `${label}: ${body.tfjs_unsupported}`);
    }
    if (body.tfjs === null) {
      assert.equal(typeof body.tfjs_unsupported, "string", label);
      assert.ok(body.tfjs_unsupported.length > 10, label);
      refused += 1;
      continue;
    }
    assert.equal(body.tfjs_unsupported, undefined, label);
    const kernel = tfjsKernel(body.tfjs, shape);
    assert.deepEqual(kernel.shape, shape, label);
    const values = kernel.dataSync();
    assert.ok(values.every(Number.isFinite), label);
    if (!body.tfjs.config || body.tfjs.config.seed === undefined) {
      // Deterministic schemes: TF.js gives exactly initlab's values.
      assert.deepEqual(Array.from(values), body.values.map(Math.fround), label);
    } else if (values.length >= MIN_COMPARED) {
      assertSameDistribution(body.values, values, body.tfjs.className, label);
      compared += 1;
    }
    loaded += 1;
  }
  assert.ok(loaded >= 20, `only ${loaded} echoes loaded`);
  assert.ok(compared >= 12, `only ${compared} echoes compared as distributions`);
  assert.ok(refused >= 28, `only ${refused} echoes refused`);
});

test("the refused forms are ones TF.js 4.22 cannot load or would draw differently", async () => {
  // KaimingNormal and Dirac are unknown to TF.js; untruncated_normal fails to load.
  for (const className of ["KaimingNormal", "Dirac"]) {
    assert.throws(() => tfjsKernel({ className, config: {} }, [4, 4]));
  }
  assert.throws(() =>
    tfjsKernel(
      { className: "VarianceScaling", config: { distribution: "untruncated_normal" } },
      [4, 4],
    ),
  );
  // randomUniform({minval: 0}) draws from [-0.05, ...): the echo would mean something else.
  const kernel = tfjsKernel(
    { className: "RandomUniform", config: { minval: 0, maxval: 1, seed: 1 } },
    [50, 50],
  );
  assert.ok(tf.min(kernel).dataSync()[0] < 0);
  // TruncatedNormal({stddev: 0}) draws with stddev 0.05, where initlab serves the mean.
  const flat = tfjsKernel(
    { className: "TruncatedNormal", config: { stddev: 0, seed: 1 } },
    [50, 50],
  );
  assert.ok(moments(flat.dataSync()).std > 0.04);
  // Identity refuses a rectangular shape.
  assert.throws(() => tfjsKernel({ className: "Identity", config: { gain: 2 } }, [3, 5]), /square/);
  // Glorot uniform on a rank-1 and a rank-6 shape: TF.js's sqrt(prod(shape)) fans give a
  // std several times initlab's (Keras's).
  const glorot = {
    className: "VarianceScaling",
    config: { mode: "fanAvg", distribution: "uniform", seed: 1 },
  };
  for (const [shape, ratio] of [[[20000], 10], [[4, 4, 4, 4, 4, 4], 3]]) {
    const served = await fetchTensor("glorot_uniform", shape);
    assert.equal(served.tfjs, null);
    const theirs = moments(tfjsKernel(glorot, shape).dataSync()).std;
    assert.ok(theirs > ratio * moments(served.values).std, `${shape}: ${theirs}`);
  }
});
