// Every TF.js echo initlab gives (the `tfjs` field of a tensor response) loads in TF.js 4.22:
// for every scheme in the catalog (and parameter values TF.js handles differently), `tfjs` is
// either a config that tf.layers deserializes and draws a kernel of the right shape from, or
// null with a `tfjs_unsupported` reason.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

const BASE = process.env.INITLAB_URL;
assert.ok(BASE, "set INITLAB_URL to the base URL of a running initlab");

// Shapes the schemes accept; TF.js's Identity needs a square matrix.
const SHAPES = {
  dirac: [4, 4, 3],
  delta_orthogonal: [3, 4, 4],
  stft: [8, 1, 5],
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
  { name: "orthogonal", params: { gain: 2 } },
  { name: "orthogonal", params: { column_axis: 0 } },
  { name: "constant", params: { value: 0.25 } },
  { name: "identity", params: { gain: 3 } },
];

async function fetchTensor(initializer, shape) {
  const res = await fetch(`${BASE}/v1/tensors`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ shape, initializer, seed: 11 }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

function tfjsKernel(config, [rows, cols]) {
  // The path a TF.js user takes: the echo as a layer's kernelInitializer.
  const layer = tf.layers.dense({ units: cols, inputShape: [rows], kernelInitializer: config });
  tf.sequential({ layers: [layer] });
  return layer.getWeights()[0];
}

async function references() {
  const res = await fetch(`${BASE}/v1/initializers`);
  assert.equal(res.status, 200);
  const { initializers } = await res.json();
  assert.ok(initializers.length >= 35);
  return [...initializers.map((e) => e.name), ...VARIANTS];
}

test("every non-null tfjs echo loads in TF.js 4.22 and draws the requested shape", async () => {
  let loaded = 0;
  let refused = 0;
  for (const ref of await references()) {
    const name = typeof ref === "string" ? ref : ref.name;
    const shape = SHAPES[name] ?? [6, 6];
    const body = await fetchTensor(ref, shape);
    if (body.tfjs === null) {
      assert.equal(typeof body.tfjs_unsupported, "string", JSON.stringify(ref));
      assert.ok(body.tfjs_unsupported.length > 10, JSON.stringify(ref));
      refused += 1;
      continue;
    }
    assert.equal(body.tfjs_unsupported, undefined, JSON.stringify(ref));
    const kernel = tfjsKernel(body.tfjs, shape);
    assert.deepEqual(kernel.shape, shape, JSON.stringify(ref));
    const values = kernel.dataSync();
    assert.ok(values.every(Number.isFinite), JSON.stringify(ref));
    if (!body.tfjs.config || body.tfjs.config.seed === undefined) {
      // Deterministic schemes: TF.js gives exactly initlab's values.
      assert.deepEqual(Array.from(values), body.values.map(Math.fround), JSON.stringify(ref));
    }
    loaded += 1;
  }
  assert.ok(loaded >= 15, `only ${loaded} echoes loaded`);
  assert.ok(refused >= 20, `only ${refused} echoes refused`);
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
});
