// TensorFlow.js 4.22 against a running initlab (INITLAB_URL): models that together hold every
// layer type TF.js has load with tf.loadLayersModel straight from the server, every weight
// (matched by the model.json manifest's names) equal bit for bit to weights.bin, and predict's
// output shape equal to the one the server inferred. Every other layer type of the table, and
// every config TF.js cannot run, has no model.json but a 422 naming the field.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

const BASE = process.env.INITLAB_URL;
assert.ok(BASE, "set INITLAB_URL to the base URL of a running initlab");

const CF = { data_format: "channels_first" };
const MODELS = {
  vision2d: {
    input_shape: [8, 8, 3],
    seed: 5,
    layers: [
      { type: "conv2d_transpose", filters: 4, kernel_size: 3, strides: 2, padding: "same" },
      { type: "depthwise_conv2d", kernel_size: 3, depth_multiplier: 2 },
      { type: "separable_conv2d", filters: 4, kernel_size: 3, strides: 2 },
      { type: "p_re_lu", shared_axes: [1, 2] },
      { type: "max_pooling2d", padding: "same" },
      { type: "zero_padding2d", padding: [[1, 0], [0, 1]] },
      { type: "cropping2d", cropping: 1 },
      { type: "up_sampling2d", interpolation: "bilinear" },
      { type: "average_pooling2d", pool_size: 2 },
      { type: "re_lu", max_value: 6 },
      { type: "leaky_re_lu", negative_slope: 0.2 },
      { type: "global_max_pooling2d" },
      { type: "reshape", target_shape: [2, -1] },
      { type: "elu" },
      { type: "softmax" },
    ],
  },
  vision2d_tfjs_defaults: {
    input_shape: [3, 9, 9],
    seed: 6,
    defaults: "tfjs",
    layers: [
      { type: "conv2d", filters: 4, kernel_size: 3, ...CF },
      { type: "depthwise_conv2d", kernel_size: [2, 3], strides: 2, ...CF },
      { type: "separable_conv2d", filters: 3, kernel_size: 2, padding: "same", ...CF },
      { type: "conv2d_transpose", filters: 2, kernel_size: 2, ...CF },
      { type: "global_average_pooling2d", ...CF },
    ],
  },
  volume: {
    input_shape: [6, 6, 6, 2],
    seed: 7,
    layers: [
      { type: "conv3d", filters: 3, kernel_size: 3, padding: "same" },
      { type: "conv3d_transpose", filters: 2, kernel_size: 2, strides: 2 },
      { type: "max_pooling3d" },
      { type: "average_pooling3d", pool_size: [2, 2, 3], strides: 1, padding: "same" },
      { type: "flatten" },
      { type: "dense", units: 4 },
    ],
  },
  signal1d: {
    input_shape: [16, 3],
    seed: 8,
    layers: [
      { type: "masking" },
      { type: "conv1d", filters: 4, kernel_size: 3, strides: 2 },
      { type: "max_pooling1d" },
      { type: "average_pooling1d", pool_size: 2, padding: "same" },
      { type: "spatial_dropout1d", rate: 0.1, seed: 4 },
      { type: "dropout", rate: 0.1, noise_shape: [null, 1, 4], seed: 5 },
      { type: "gaussian_noise", stddev: 0.1, seed: 6 },
      { type: "gaussian_dropout", rate: 0.1 },
      { type: "alpha_dropout", rate: 0.1, noise_shape: [2, 2, 1] },
      { type: "global_max_pooling1d" },
      { type: "repeat_vector", n: 5 },
      { type: "permute", dims: [2, 1] },
      { type: "time_distributed", layer: { type: "dense", units: 3 } },
      {
        type: "bidirectional",
        layer: { type: "lstm", units: 2, return_sequences: true },
      },
      {
        type: "bidirectional",
        layer: { type: "gru", units: 2, return_sequences: true, reset_after: false },
        merge_mode: "ave",
      },
      { type: "global_average_pooling1d" },
      { type: "dense", units: 2 },
    ],
  },
  nested: {
    input_shape: [4, 6, 3],
    seed: 10,
    layers: [
      {
        type: "time_distributed",
        layer: { type: "bidirectional", layer: { type: "simple_rnn", units: 2 }, merge_mode: "mul" },
      },
      { type: "time_distributed", layer: { type: "dense", units: 3 }, name: "td" },
      { type: "flatten" },
    ],
  },
  sequence: {
    input_shape: [7],
    seed: 9,
    layers: [
      { type: "embedding", input_dim: 20, output_dim: 4 },
      { type: "bidirectional", layer: { type: "simple_rnn", units: 3 }, merge_mode: "sum" },
      { type: "batch_normalization" },
      { type: "layer_normalization" },
      { type: "dropout", rate: 0.1 },
      { type: "activation", activation: "tanh" },
    ],
  },
};

// One model per layer type TF.js 4.22 lacks: its model.json is a 422 naming the type.
const UNSUPPORTED = {
  conv1d_transpose: [[5, 3], { filters: 2, kernel_size: 3 }],
  depthwise_conv1d: [[5, 3], { kernel_size: 3 }],
  separable_conv1d: [[5, 3], { filters: 2, kernel_size: 3 }],
  zero_padding1d: [[5, 3], {}],
  zero_padding3d: [[3, 3, 3, 2], {}],
  cropping1d: [[5, 3], {}],
  cropping3d: [[3, 3, 3, 2], {}],
  up_sampling1d: [[5, 3], {}],
  up_sampling3d: [[3, 3, 3, 2], {}],
  global_max_pooling3d: [[3, 3, 3, 2], {}],
  global_average_pooling3d: [[3, 3, 3, 2], {}],
  spatial_dropout2d: [[3, 3, 2], { rate: 0.1 }],
  spatial_dropout3d: [[3, 3, 3, 2], { rate: 0.1 }],
};

// Configs TF.js 4.22 cannot run as written: [input shape, layer, the field named].
const REFUSED = [
  [[5, 3], { type: "re_lu", negative_slope: 0.1 }, "negative_slope"],
  [[5, 3], { type: "elu", alpha: 0.5 }, "alpha"],
  [[5, 4, 3], { type: "conv2d_transpose", filters: 2, kernel_size: 3, strides: 2, output_padding: 1 }, "output_padding"],
  [[5, 4, 3], { type: "conv2d_transpose", filters: 2, kernel_size: 2, dilation_rate: 2 }, "dilation_rate"],
  [[9, 9, 3], { type: "depthwise_conv2d", kernel_size: 3, dilation_rate: 2 }, "dilation_rate"],
  [[3, 9], { type: "max_pooling1d", ...CF }, "data_format"],
  [[3, 9], { type: "global_average_pooling1d", ...CF }, "data_format"],
  [[9, 3], { type: "global_max_pooling1d", keepdims: true }, "keepdims"],
  [[4, 4, 2], { type: "up_sampling2d", interpolation: "bicubic" }, "interpolation"],
  [[9, 9, 4], { type: "conv2d", filters: 2, kernel_size: 3, groups: 2 }, "groups"],
  [[9, 4], { type: "conv1d", filters: 2, kernel_size: 3, padding: "causal" }, "padding"],
  [[9, 4], { type: "alpha_dropout", rate: 0.1, noise_shape: [null, 9, 1] }, "noise_shape"],
  [[6, 4], { type: "bidirectional", layer: { type: "lstm", units: 2 }, merge_mode: null }, "merge_mode"],
  [
    [6, 4],
    {
      type: "bidirectional",
      layer: { type: "lstm", units: 2 },
      backward_layer: { type: "lstm", units: 2, go_backwards: true },
    },
    "backward_layer",
  ],
  [[5, 6, 4], { type: "time_distributed", layer: { type: "gru", units: 2 } }, "layer.reset_after"],
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

async function problem(url) {
  const res = await fetch(url);
  assert.equal(res.status, 422, `${url}: ${res.status}`);
  assert.equal(res.headers.get("Content-Type"), "application/problem+json");
  return res.json();
}

function types(layers) {
  return layers.flatMap((l) => [l.type, ...(l.layer ? types([l.layer]) : [])]);
}

for (const [label, spec] of Object.entries(MODELS)) {
  test(`${label}: loads in TF.js with the served weights bit for bit and the inferred shape`, async () => {
    const model = await post(spec);
    const artifact = await (await fetch(`${BASE}${model.links.model_json}`)).json();
    const loaded = await tf.loadLayersModel(`${BASE}${model.links.model_json}`);
    const blob = new Float32Array(
      await (await fetch(`${BASE}${model.links.weights_bin}`)).arrayBuffer(),
    );
    // model.json names each weight as TF.js does (depthwise_kernel, no TimeDistributed inner
    // name); its order is weights.bin's and the order of the served manifest.
    const manifest = artifact.weightsManifest[0].weights;
    assert.deepEqual(
      manifest.map((w) => w.shape),
      model.weights.map((w) => w.shape),
    );
    const byName = new Map(loaded.weights.map((w) => [w.originalName, w]));
    assert.equal(byName.size, manifest.length);
    let offset = 0;
    for (const entry of manifest) {
      const variable = byName.get(entry.name);
      assert.ok(variable, `TF.js has no weight ${entry.name}: ${[...byName.keys()]}`);
      assert.deepEqual(variable.shape, entry.shape, entry.name);
      const got = variable.read().dataSync();
      const want = blob.subarray(offset, offset + got.length);
      offset += got.length;
      for (let i = 0; i < got.length; i++) {
        if (!Object.is(got[i], want[i])) assert.fail(`${entry.name}[${i}]: ${got[i]} !== ${want[i]}`);
      }
    }
    assert.equal(offset, blob.length);

    const x = label === "sequence" ? tf.ones([2, ...spec.input_shape]) : tf.randomNormal([2, ...spec.input_shape], 0, 1, "float32", 1);
    const y = loaded.predict(x);
    assert.deepEqual(y.shape, [2, ...model.output_shape]);
    assert.ok(y.dataSync().every(Number.isFinite), `${label}: non-finite output`);
    // Keras 3 fields TF.js spells otherwise arrive as TF.js reads them.
    for (const [i, layer] of spec.layers.entries()) {
      if (layer.type === "leaky_re_lu") {
        assert.equal(loaded.layers[i].getConfig().alpha, layer.negative_slope);
      }
      // a dropout's seed and noise_shape reach the TF.js layer that takes them
      if (["dropout", "spatial_dropout1d"].includes(layer.type)) {
        assert.equal(loaded.layers[i].getConfig().seed, layer.seed);
      }
      if (layer.noise_shape) assert.deepEqual(loaded.layers[i].noiseShape, layer.noise_shape);
    }
    // the noise layers run in training mode too (the mask shapes fit the input)
    if (label === "signal1d") {
      const trained = loaded.layers.slice(0, 9).reduce((t, l) => l.apply(t, { training: true }), x);
      assert.ok(trained.dataSync().every(Number.isFinite));
    }
  });
}

test("every layer type of the table loads in TF.js or has a 422 naming it", async () => {
  const res = await fetch(`${BASE}/v1/models`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ input_shape: [3], layers: [{ type: "no_such_layer" }] }),
  });
  assert.equal(res.status, 422);
  // The merge layers take several inputs: topology.test.mjs loads them in graphs.
  const merge = ["add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"];
  const supported = (await res.json()).detail
    .match(/supported: (.*)$/)[1]
    .split(", ")
    .filter((type) => !merge.includes(type));
  const loaded = new Set(Object.values(MODELS).flatMap((m) => types(m.layers)));
  assert.deepEqual(
    [...supported].sort(),
    [...new Set([...loaded, ...Object.keys(UNSUPPORTED)])].sort(),
  );
  for (const type of Object.keys(UNSUPPORTED)) assert.ok(!loaded.has(type), type);
  for (const [type, [shape, fields]] of Object.entries(UNSUPPORTED)) {
    const model = await post({ input_shape: shape, layers: [{ type, ...fields }], seed: 1 });
    const found = await problem(`${BASE}${model.links.model_json}`);
    assert.match(found.detail, /^layers\[0\]\.type: TF\.js 4\.22 has no /, type);
    // the other files still work
    assert.equal((await fetch(`${BASE}${model.links.weights_bin}`)).status, 200);
  }
});

for (const [shape, layer, field] of REFUSED) {
  test(`${layer.type} with ${field} as given: model.json is a 422 naming layers[0].${field}`, async () => {
    const model = await post({ input_shape: shape, layers: [layer], seed: 1 });
    const found = await problem(`${BASE}${model.links.model_json}`);
    assert.ok(found.detail.startsWith(`layers[0].${field}: TF.js 4.22`), found.detail);
  });
}

test("what model.json refuses, TF.js itself cannot run as Keras does", async () => {
  assert.throws(() => tf.layers.elu({ alpha: 0.5 }), /Non-default alpha/);
  // TF.js's global pooling has no keepdims: the axes are dropped whatever the config says.
  const keep = await post({
    input_shape: [9, 3],
    layers: [{ type: "global_max_pooling1d", keepdims: true }],
  });
  const pooled = tf.layers.globalMaxPooling1d({ keepdims: true }).apply(tf.zeros([1, 9, 3]));
  assert.notDeepEqual(pooled.shape.slice(1), keep.output_shape);
  // TF.js's Conv2DTranspose ignores output_padding: another output size than Keras's.
  const [shape, layer] = REFUSED[2];
  const padded = await post({ input_shape: shape, layers: [layer] });
  const up = tf.layers.conv2dTranspose({ filters: 2, kernelSize: 3, strides: 2, outputPadding: 1 });
  assert.notDeepEqual(up.apply(tf.zeros([1, ...shape])).shape.slice(1), padded.output_shape);
  // TF.js's causal Conv1D: built with the valid output size, and it throws when it runs.
  const causal = await post({ input_shape: [9, 4], layers: [REFUSED.find(([, l]) => l.padding === "causal")[1]] });
  const conv = tf.layers.conv1d({ filters: 2, kernelSize: 3, padding: "causal" });
  const symbolic = conv.apply(tf.input({ shape: [9, 4] }));
  assert.notDeepEqual(symbolic.shape.slice(1), causal.output_shape);
  assert.throws(() => conv.apply(tf.zeros([1, 9, 4])), /CAUSAL padding/);
  // TF.js's AlphaDropout draws its mask in noise_shape as given: a null size throws.
  const alpha = tf.layers.alphaDropout({ rate: 0.1, noiseShape: [null, 9, 1] });
  assert.throws(() => alpha.apply(tf.zeros([1, 9, 4]), { training: true }), /positive integers/);
});
