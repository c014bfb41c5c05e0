// Time to an initialized model in TF.js 4.22 (node, pure-JS CPU backend): tf.loadLayersModel
// from initlab against TF.js building the same model with its own initializers, interleaved
// (served, own, served, own, ... one pair per repetition: the machine's drift hits both).
//   INITLAB_URL=... TFJS_DIR=tests/conformance/tfjs node bench/tfjs/models.mjs [--tfjs-lstm]
// Prints one table row per model: medians, [min-max] and the median of the pairs' ratios.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.resolve(process.env.TFJS_DIR, "package.json"));
const tf = require("@tensorflow/tfjs");
const BASE = process.env.INITLAB_URL;
const WARMUP = 3;
const REPEATS = 21;

const MODELS = {
  "MLP 784-256-128-10": {
    spec: {
      input_shape: [784],
      defaults: "tfjs",
      layers: [
        { type: "dense", units: 256, activation: "relu" },
        { type: "dense", units: 128, activation: "relu" },
        { type: "dense", units: 10, activation: "softmax" },
      ],
    },
    own: () => [
      tf.layers.dense({ units: 256, activation: "relu", inputShape: [784] }),
      tf.layers.dense({ units: 128, activation: "relu" }),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  },
  "small CNN (28x28x1: conv 32, conv 64, dense 10)": {
    spec: {
      input_shape: [28, 28, 1],
      defaults: "tfjs",
      layers: [
        { type: "conv2d", filters: 32, kernel_size: 3, activation: "relu" },
        { type: "conv2d", filters: 64, kernel_size: 3, strides: 2, activation: "relu" },
        { type: "flatten" },
        { type: "dense", units: 10, activation: "softmax" },
      ],
    },
    own: () => [
      tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: "relu", inputShape: [28, 28, 1] }),
      tf.layers.conv2d({ filters: 64, kernelSize: 3, strides: 2, activation: "relu" }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  },
  "LSTM(256) on (20, 64), Dense(10)": {
    spec: {
      input_shape: [20, 64],
      defaults: "tfjs",
      layers: [{ type: "lstm", units: 256 }, { type: "dense", units: 10 }],
    },
    own: () => [tf.layers.lstm({ units: 256, inputShape: [20, 64] }), tf.layers.dense({ units: 10 })],
    slow: true,
  },
};

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const spread = (xs) => `${median(xs).toFixed(1)} ms [${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}]`;

// Both end with the first kernel's values on the CPU: the model is ready to run.
async function served(url) {
  const t0 = performance.now();
  const m = await tf.loadLayersModel(url);
  m.getWeights()[0].dataSync();
  const ms = performance.now() - t0;
  m.dispose();
  return ms;
}

function itself(own) {
  const t0 = performance.now();
  const m = tf.sequential({ layers: own() });
  m.getWeights()[0].dataSync();
  const ms = performance.now() - t0;
  m.dispose();
  return ms;
}

console.log(
  `| model | params | initlab loadLayersModel, median [range] of ${REPEATS} | ` +
    "TF.js builds it itself | initlab / TF.js (median of pairs) |",
);
console.log("|---|---|---|---|---|");
for (const [label, { spec, own, slow }] of Object.entries(MODELS)) {
  const res = await fetch(`${BASE}/v1/models`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...spec, seed: 1 }),
  });
  const model = await res.json();
  const url = `${BASE}${model.links.model_json}`;
  const runOwn = !slow || process.argv.includes("--tfjs-lstm");
  for (let i = 0; i < WARMUP; i++) {
    await served(url);
    if (!slow) itself(own);
  }
  const ours = [];
  const theirs = [];
  for (let i = 0; i < REPEATS; i++) {
    // Alternate which goes first, so neither always runs right after the other's garbage.
    if (i % 2 === 0) ours.push(await served(url));
    if (runOwn && (!slow || i === 0)) theirs.push(itself(own));
    if (i % 2 === 1) ours.push(await served(url));
  }
  let mine = "not run (pass --tfjs-lstm; 480 s measured in issue #8)";
  let ratio = "";
  if (theirs.length === ours.length) {
    mine = spread(theirs);
    ratio = `${median(ours.map((t, i) => t / theirs[i])).toFixed(2)}×`;
  } else if (theirs.length) {
    mine = `${theirs[0].toFixed(0)} ms (one run)`;
    ratio = `${(median(ours) / theirs[0]).toExponential(1)}×`;
  }
  console.log(`| ${label} | ${model.params} | ${spread(ours)} | ${mine} | ${ratio} |`);
}
