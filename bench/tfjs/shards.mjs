// tf.loadLayersModel of one model from initlab: its model.json as served (4 MiB shards,
// fetched at once) against the same model.json rewritten to the single weights.bin.
//   INITLAB_URL=... TFJS_DIR=tests/conformance/tfjs MODEL_JSON=/v1/models/<id>/model.json \
//     node bench/tfjs/shards.mjs
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.resolve(process.env.TFJS_DIR, "package.json"));
const tf = require("@tensorflow/tfjs");
const URL_ = `${process.env.INITLAB_URL}${process.env.MODEL_JSON}`;
const REPEATS = 5;

// A fetch that hands TF.js the model.json with its weights group's paths replaced.
function rewriting(paths) {
  return async (url, init) => {
    const res = await fetch(url, init);
    if (!String(url).endsWith("model.json") || paths === null) return res;
    const doc = await res.json();
    doc.weightsManifest[0].paths = paths;
    return new Response(JSON.stringify(doc), { headers: { "Content-Type": "application/json" } });
  };
}

async function median(paths) {
  const times = [];
  let count = 0;
  for (let i = 0; i < REPEATS; i++) {
    const t0 = performance.now();
    const model = await tf.loadLayersModel(tf.io.http(URL_, { fetchFunc: rewriting(paths) }));
    times.push(performance.now() - t0);
    count = model.countParams();
    model.dispose();
  }
  times.sort((a, b) => a - b);
  return [times[Math.floor(REPEATS / 2)], count];
}

const served = await (await fetch(URL_)).json();
const shards = served.weightsManifest[0].paths.length;
await median(null); // warm-up
const [sharded, params] = await median(null);
const [single] = await median(["weights.bin"]);
console.log(`| ${params} | ${shards} shards of 4 MiB: ${sharded.toFixed(0)} ms | one weights.bin: ${single.toFixed(0)} ms |`);
