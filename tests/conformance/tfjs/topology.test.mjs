// TensorFlow.js against a running initlab (INITLAB_URL): topologies posted to /v1/models.
// (a) Keras 3 model.to_json() files (fixtures/keras3_*.json, written by Keras 3: see
// tests/conformance/keras_topologies.py) and a Keras 2 / tf.keras functional JSON
// (fixtures/keras2_functional.json: written here in tf.keras 2.15's to_json() form, as no
// TensorFlow is installed to write one, each layer as tf-keras 2.15's serialize_keras_object
// writes it, InputLayer too; TF.js's own toJSON() below is Keras 2 form too): the served
// model.json loads with tf.loadLayersModel, every weight equal bit for bit to weights.bin,
// predict runs. (b) TF.js's own model.toJSON() (Sequential and functional, the object, the
// string and a whole model.json artifact) posted back gives TF.js's weight names and shapes.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

import * as tf from "@tensorflow/tfjs";

import { BASE, assertServedWeights, post } from "./served.mjs";

const FIXTURES = new URL("./fixtures/", import.meta.url);

// The served model loads; its weights are weights.bin's bit for bit; predict runs.
async function loadsBitForBit(model) {
  const loaded = await tf.loadLayersModel(`${BASE}${model.links.model_json}`);
  await assertServedWeights(loaded, model);
  const xs = loaded.inputs.map((x) => tf.ones([2, ...x.shape.slice(1).map((d) => d ?? 3)], x.dtype));
  const ys = [loaded.predict(xs.length === 1 ? xs[0] : xs)].flat();
  assert.equal(ys.length, loaded.outputs.length);
  for (const y of ys) {
    assert.equal(y.shape[0], 2);
    assert.ok(y.dataSync().every(Number.isFinite), "non-finite output");
  }
  return loaded;
}

const keras3 = readdirSync(FIXTURES).filter((f) => f.startsWith("keras3_"));
test("the Keras 3 fixtures are there", () => assert.ok(keras3.length >= 3, `${keras3}`));

for (const file of keras3) {
  test(`Keras 3 ${file}: posted as to_json() text, model.json loads in TF.js 4.22`, async () => {
    const text = readFileSync(new URL(file, FIXTURES), "utf8");
    const model = await post({ topology: text, seed: 7 });
    const loaded = await loadsBitForBit(model);
    const keras = JSON.parse(text);
    assert.equal(loaded.name, keras.config.name);
    const served = await (await fetch(`${BASE}${model.links.model_json}`)).json();
    const kind = served.modelTopology.class_name;
    // int32 inputs (token ids) keep their dtype on an InputLayer: a Functional
    const ids = loaded.inputs.some((x) => x.dtype === "int32");
    assert.equal(ids, file.includes("token_ids"));
    assert.equal(kind, keras.class_name === "Sequential" && !ids ? "Sequential" : "Functional");
  });
}

test("a Keras 2 (tf.keras 2.15) functional JSON posts and loads", async () => {
  const text = readFileSync(new URL("keras2_functional.json", FIXTURES), "utf8");
  const model = await post({ topology: JSON.parse(text), seed: 8 });
  assert.deepEqual(
    model.weights.map((w) => w.name),
    ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"],
  );
  await loadsBitForBit(model);
});

function tfjsModels() {
  const seq = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3 }),
      tf.layers.batchNormalization(),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5, kernelRegularizer: tf.regularizers.l2({ l2: 0.01 }) }),
    ],
  });
  const a = tf.input({ shape: [6], name: "a" });
  const b = tf.input({ shape: [4, 3], name: "b" });
  const lstm = tf.layers.lstm({ units: 6 }).apply(b);
  const sum = tf.layers.add().apply([tf.layers.dense({ units: 6 }).apply(a), lstm]);
  const cat = tf.layers.concatenate().apply([sum, a]);
  const out1 = tf.layers.dense({ units: 2 }).apply(cat);
  const out2 = tf.layers.dense({ units: 1 }).apply(sum);
  const functional = tf.model({ inputs: [a, b], outputs: [out1, out2], name: "tfjs_functional" });
  return { seq, functional };
}

for (const form of ["object", "string", "artifact"]) {
  test(`TF.js's own model.toJSON() posted back (${form}) gives TF.js's names and shapes`, async () => {
    for (const built of Object.values(tfjsModels())) {
      let topology = built.toJSON(null, false);
      if (form === "string") topology = built.toJSON();
      if (form === "artifact") {
        let artifact;
        await built.save(tf.io.withSaveHandler(async (a) => { artifact = a; return {}; }));
        topology = { modelTopology: artifact.modelTopology, format: artifact.format };
      }
      const model = await post({ topology, seed: 9 });
      const theirs = built.weights.map((w) => [w.originalName, w.shape]);
      const ours = model.weights.map((w) => [w.name, w.shape]);
      assert.deepEqual(new Map(ours), new Map(theirs));
      assert.equal(ours.length, theirs.length);
      const loaded = await loadsBitForBit(model);
      assert.deepEqual(loaded.outputs.map((o) => o.shape), built.outputs.map((o) => o.shape));
    }
  });
}

// Every layer type TF.js 4.22 and the table share, built with TF.js's defaults: its toJSON()
// writes null for what was not given (Embedding mask_zero, SpatialDropout1D noise_shape, ...)
// and LeakyReLU's alpha; each posts, and the served model.json posted back is the same model.
const L = tf.layers;
const DEFAULT_LAYERS = {
  dense: [[4], (a) => L.dense({ units: 3, ...a })],
  flatten: [[4, 2], (a) => L.flatten(a)],
  dropout: [[4], (a) => L.dropout({ rate: 0.1, ...a })],
  spatialDropout1d: [[5, 3], (a) => L.spatialDropout1d({ rate: 0.1, ...a })],
  gaussianDropout: [[4], (a) => L.gaussianDropout({ rate: 0.1, ...a })],
  gaussianNoise: [[4], (a) => L.gaussianNoise({ stddev: 0.1, ...a })],
  alphaDropout: [[4], (a) => L.alphaDropout({ rate: 0.1, ...a })],
  masking: [[5, 3], (a) => L.masking(a)],
  activation: [[4], (a) => L.activation({ activation: "relu", ...a })],
  embedding: [[6], (a) => L.embedding({ inputDim: 30, outputDim: 4, ...a })],
  batchNormalization: [[4], (a) => L.batchNormalization(a)],
  layerNormalization: [[4], (a) => L.layerNormalization(a)],
  conv1d: [[8, 2], (a) => L.conv1d({ filters: 2, kernelSize: 3, ...a })],
  conv2d: [[8, 8, 2], (a) => L.conv2d({ filters: 2, kernelSize: 3, ...a })],
  conv3d: [[5, 5, 5, 2], (a) => L.conv3d({ filters: 2, kernelSize: 3, ...a })],
  conv2dTranspose: [[4, 4, 2], (a) => L.conv2dTranspose({ filters: 2, kernelSize: 3, ...a })],
  conv3dTranspose: [[3, 3, 3, 2], (a) => L.conv3dTranspose({ filters: 2, kernelSize: 2, ...a })],
  depthwiseConv2d: [[8, 8, 2], (a) => L.depthwiseConv2d({ kernelSize: 3, ...a })],
  separableConv2d: [[8, 8, 2], (a) => L.separableConv2d({ filters: 2, kernelSize: 3, ...a })],
  simpleRNN: [[4, 2], (a) => L.simpleRNN({ units: 3, ...a })],
  lstm: [[4, 2], (a) => L.lstm({ units: 3, ...a })],
  gru: [[4, 2], (a) => L.gru({ units: 3, ...a })],
  maxPooling1d: [[8, 2], (a) => L.maxPooling1d(a)],
  averagePooling2d: [[8, 8, 2], (a) => L.averagePooling2d(a)],
  maxPooling3d: [[4, 4, 4, 2], (a) => L.maxPooling3d(a)],
  globalAveragePooling1d: [[8, 2], (a) => L.globalAveragePooling1d(a)],
  globalMaxPooling2d: [[8, 8, 2], (a) => L.globalMaxPooling2d(a)],
  reshape: [[4], (a) => L.reshape({ targetShape: [2, 2], ...a })],
  permute: [[4, 2], (a) => L.permute({ dims: [2, 1], ...a })],
  repeatVector: [[4], (a) => L.repeatVector({ n: 3, ...a })],
  zeroPadding2d: [[4, 4, 2], (a) => L.zeroPadding2d(a)],
  cropping2D: [[4, 4, 2], (a) => L.cropping2D({ cropping: 1, ...a })],
  upSampling2d: [[4, 4, 2], (a) => L.upSampling2d(a)],
  reLU: [[4], (a) => L.reLU(a)],
  leakyReLU: [[4], (a) => L.leakyReLU(a)],
  elu: [[4], (a) => L.elu(a)],
  softmax: [[4], (a) => L.softmax(a)],
  prelu: [[4], (a) => L.prelu(a)],
  timeDistributed: [[3, 4], (a) => L.timeDistributed({ layer: L.dense({ units: 2 }), ...a })],
  bidirectional: [[4, 2], (a) => L.bidirectional({ layer: L.lstm({ units: 3 }), ...a })],
};

test("every TF.js layer with its defaults posts as toJSON(), and its model.json posts back", async () => {
  for (const [label, [inputShape, make]] of Object.entries(DEFAULT_LAYERS)) {
    const built = tf.sequential({ layers: [make({ inputShape })] });
    const model = await post({ topology: built.toJSON(null, false), seed: 11 });
    const served = await (await fetch(`${BASE}${model.links.model_json}`)).json();
    // the manifest names each weight as TF.js does (DepthwiseConv2D's depthwise_kernel)
    const manifest = served.weightsManifest[0].weights.map((w) => [w.name, w.shape]);
    const theirs = built.weights.map((w) => [w.originalName, w.shape]);
    assert.deepEqual(new Map(manifest), new Map(theirs), label);
    const loaded = await loadsBitForBit(model);
    assert.deepEqual(loaded.outputs[0].shape, built.outputs[0].shape, label);
    const again = await post({ topology: served, seed: 11 });
    const bytes = async (m) => Buffer.from(await (await fetch(`${BASE}${m.links.weights_bin}`)).arrayBuffer());
    assert.ok((await bytes(again)).equals(await bytes(model)), `${label}: posted back, other weights`);
  }
});

test("TF.js initializing a served Bidirectional's model.json draws the two directions apart", async () => {
  const model = await post({
    input_shape: [5, 3],
    seed: 12,
    layers: [{ type: "bidirectional", layer: { type: "lstm", units: 4 } }],
  });
  const served = await (await fetch(`${BASE}${model.links.model_json}`)).json();
  // TF.js builds the backward layer from the forward layer's config: one initializer each
  const rebuilt = await tf.models.modelFromJSON({ modelTopology: served.modelTopology });
  const byName = new Map(rebuilt.weights.map((w) => [w.originalName, w.read().dataSync()]));
  for (const weight of ["kernel", "recurrent_kernel"]) {
    const forward = byName.get(`bidirectional/forward_lstm/${weight}`);
    const backward = byName.get(`bidirectional/backward_lstm/${weight}`);
    assert.ok(forward && backward, `${[...byName.keys()]}`);
    assert.ok(forward.some((v, i) => v !== backward[i]), `${weight}: both directions equal`);
  }
});
