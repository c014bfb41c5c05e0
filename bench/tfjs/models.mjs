// Time to an initialized model in TF.js 4.22 (node, pure-JS CPU backend): tf.loadLayersModel
// from initlab against TF.js building the same model with its own initializers.
//   INITLAB_URL=... TFJS_DIR=tests/conformance/tfjs node bench/tfjs/models.mjs [--tfjs-lstm]
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.resolve(process.env.TFJS_DIR, "package.json"));
const tf = require("@tensorflow/tfjs");
const BASE = process.env.INITLAB_URL;
const REPEATS = 5;

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

console.log("| model | params | initlab loadLayersModel (median of 5) | TF.js builds it itself |");
console.log("|---|---|---|---|");
for (const [label, { spec, own, slow }] of Object.entries(MODELS)) {
  const res = await fetch(`${BASE}/v1/models`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...spec, seed: 1 }),
  });
  const model = await res.json();
  const served = [];
  for (let i = 0; i < REPEATS; i++) {
    const t0 = performance.now();
    const m = await tf.loadLayersModel(`${BASE}${model.links.model_json}`);
    served.push(performance.now() - t0);
    m.dispose();
  }
  let itself = "not run (pass --tfjs-lstm; 480 s measured in issue #8)";
  if (!slow || process.argv.includes("--tfjs-lstm")) {
    const times = [];
    for (let i = 0; i < (slow ? 1 : REPEATS); i++) {
      const t0 = performance.now();
      const m = tf.sequential({ layers: own() });
      m.getWeights()[0].dataSync();
      times.push(performance.now() - t0);
      m.dispose();
    }
    itself = `${median(times).toFixed(1)} ms`;
  }
  console.log(`| ${label} | ${model.params} | ${median(served).toFixed(1)} ms | ${itself} |`);
}
