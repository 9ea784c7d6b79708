// Evaluate bundled models in ONNX Runtime (onnxruntime-node, CPU, 2 threads).
//
//   node models/train/ort_eval.mjs [--images I.gz --labels L.gz] [--check16] MODEL.onnx...
//
// For each model prints one JSON line: accuracy on the IDX images/labels (default: the full
// Fashion-MNIST test set, 10k), and with --check16 the largest |ORT - PyTorch| over the logits of
// models/data/eval16.npy against models/data/<name>.logits16.npy. Exit status 1 on any failure.
// onnxruntime-node is looked up in $ORT_NODE_MODULES (default /tmp/ortcache/node_modules).

import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadOrt, readIDX, readNpy } from "./ortutil.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.join(here, "..", "data");
const ort = loadOrt();

function argmax(a, off, n) {
  let best = 0;
  for (let j = 1; j < n; j++) if (a[off + j] > a[off + best]) best = j;
  return best;
}

async function main() {
  const args = process.argv.slice(2);
  let images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  let labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  let check16 = false;
  const models = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--images") images = args[++i];
    else if (args[i] === "--labels") labels = args[++i];
    else if (args[i] === "--check16") check16 = true;
    else models.push(args[i]);
  }
  const img = readIDX(images);
  const lab = readIDX(labels);
  const [n, h, w] = img.dims;
  const x = new Float32Array(n * h * w);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i] / 255;
  let failed = false;
  for (const model of models) {
    const name = path.basename(model, ".onnx");
    const res = { model: name };
    try {
      const sess = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, interOpNumThreads: 1 });
      const inName = sess.inputNames[0];
      const outName = sess.outputNames[0];
      const batch = 500;
      let correct = 0;
      const t0 = performance.now();
      for (let s = 0; s < n; s += batch) {
        const b = Math.min(batch, n - s);
        const t = new ort.Tensor("float32", x.subarray(s * h * w, (s + b) * h * w), [b, 1, h, w]);
        const out = (await sess.run({ [inName]: t }))[outName];
        const k = out.dims[1];
        for (let i = 0; i < b; i++) if (argmax(out.data, i * k, k) === lab.data[s + i]) correct++;
      }
      res.ort_accuracy = correct / n;
      res.n = n;
      res.ms = Math.round(performance.now() - t0);
      if (check16) {
        const x16 = readNpy(path.join(dataDir, "eval16.npy"));
        const want = readNpy(path.join(dataDir, `${name}.logits16.npy`));
        const out = (await sess.run({ [inName]: new ort.Tensor("float32", x16.data, x16.shape) }))[outName];
        let maxDiff = 0;
        for (let i = 0; i < want.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out.data[i] - want.data[i]));
        res.max_abs_diff16 = maxDiff;
        if (!(maxDiff < 1e-3) || out.data.length !== want.data.length) throw new Error(`logits differ from PyTorch by ${maxDiff}`);
      }
    } catch (e) {
      res.error = String(e.message || e);
      failed = true;
    }
    console.log(JSON.stringify(res));
  }
  process.exit(failed ? 1 : 0);
}

main();
