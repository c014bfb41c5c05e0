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
