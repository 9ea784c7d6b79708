// Check that ONNX Runtime (onnxruntime-node, CPU) loads and runs every exported zoo model and
// agrees with PyTorch.
//
//   node models/zoo/ort_check.mjs ZOO_DIR [NAME ...]
//
// For each ZOO_DIR/<name>.onnx: runs ZOO_DIR/input.npy (batch 1) and the same image twice
// (batch 2, exercising the dynamic batch axis), compares with ZOO_DIR/<name>.logits.npy written by
// export_zoo.py, and prints one JSON line: load and run times, output shape, largest absolute
// difference relative to the largest |logit|. Exit status 1 if any model fails to load or run,
// has the wrong output shape, or differs by more than 1e-3 relative.

import { readdirSync } from "node:fs";
import path from "node:path";
import { loadOrt, readNpy } from "../train/ortutil.mjs";

const ort = loadOrt();

async function main() {
  const [dir, ...only] = process.argv.slice(2);
  if (!dir) {
    console.error("usage: node models/zoo/ort_check.mjs ZOO_DIR [NAME ...]");
    process.exit(2);
  }
  const names = only.length
    ? only
    : readdirSync(dir).filter((f) => f.endsWith(".onnx")).map((f) => f.slice(0, -5)).sort();
  const x = readNpy(path.join(dir, "input.npy"));
  const x2 = new Float32Array(x.data.length * 2);
  x2.set(x.data, 0);
  x2.set(x.data, x.data.length);
  let failed = false;
  for (const name of names) {
    const res = { model: name };
    try {
      let t = performance.now();
      const sess = await ort.InferenceSession.create(path.join(dir, name + ".onnx"), {
        intraOpNumThreads: 2,
        interOpNumThreads: 1,
      });
      res.load_ms = Math.round(performance.now() - t);
      const [inName] = sess.inputNames;
      const [outName] = sess.outputNames;
      t = performance.now();
      const y1 = (await sess.run({ [inName]: new ort.Tensor("float32", x.data, x.shape) }))[outName];
      res.run_ms = Math.round(performance.now() - t);
      const y2 = (await sess.run({ [inName]: new ort.Tensor("float32", x2, [2, ...x.shape.slice(1)]) }))[outName];
      res.dims = y1.dims;
      const want = readNpy(path.join(dir, name + ".logits.npy"));
      let scale = 0;
      let diff = 0;
      for (let i = 0; i < want.data.length; i++) {
        scale = Math.max(scale, Math.abs(want.data[i]));
        diff = Math.max(diff, Math.abs(y1.data[i] - want.data[i]));
        diff = Math.max(diff, Math.abs(y2.data[i] - want.data[i]), Math.abs(y2.data[want.data.length + i] - want.data[i]));
      }
      res.max_abs_logit = scale;
      res.rel_diff = diff / Math.max(scale, 1e-12);
      if (y1.dims.join() !== want.shape.join()) throw new Error(`output dims ${y1.dims}, want ${want.shape}`);
      if (y2.dims[0] !== 2) throw new Error(`batch 2 gave dims ${y2.dims}`);
      if (!(res.rel_diff < 1e-3)) throw new Error(`differs from PyTorch: relative ${res.rel_diff}`);
    } catch (e) {
      res.error = String(e.message || e);
      failed = true;
    }
    console.log(JSON.stringify(res));
  }
  process.exit(failed ? 1 : 0);
}

main();
