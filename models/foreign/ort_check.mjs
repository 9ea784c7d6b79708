// Check that ONNX Runtime (onnxruntime-node, CPU) runs every model make_foreign.py wrote and agrees
// with the reference output the script saved.
//
//   ORT_NODE_MODULES=~/.cache/chanopt/ort-1.30.0/node_modules node models/foreign/ort_check.mjs DIR [NAME ...]
//
// For each DIR/<name>.onnx: runs DIR/<name>.input.npy (batch 2), compares the first output with
// DIR/<name>.expected.npy, and prints one JSON line (output dims, largest absolute difference
// relative to the largest |expected|). Exit status 1 if any model fails to load or run, has the
// wrong output shape, or differs by more than 1e-4 relative.

import { readdirSync } from "node:fs";
import path from "node:path";
import { loadOrt, readNpy } from "../train/ortutil.mjs";

const ort = loadOrt();

async function main() {
  const [dir, ...only] = process.argv.slice(2);
  if (!dir) {
    console.error("usage: node models/foreign/ort_check.mjs DIR [NAME ...]");
    process.exit(2);
  }
  const names = only.length
    ? only
    : readdirSync(dir).filter((f) => f.endsWith(".onnx")).map((f) => f.slice(0, -5)).sort();
  let failed = false;
  for (const name of names) {
    const res = { model: name };
    try {
      const sess = await ort.InferenceSession.create(path.join(dir, name + ".onnx"), {
        intraOpNumThreads: 2,
        interOpNumThreads: 1,
      });
      const x = readNpy(path.join(dir, name + ".input.npy"));
      const want = readNpy(path.join(dir, name + ".expected.npy"));
      const out = await sess.run({ [sess.inputNames[0]]: new ort.Tensor("float32", x.data, x.shape) });
      const y = out[sess.outputNames[0]];
      res.dims = y.dims;
      let scale = 0;
      let diff = 0;
      for (let i = 0; i < want.data.length; i++) {
        scale = Math.max(scale, Math.abs(want.data[i]));
        diff = Math.max(diff, Math.abs(y.data[i] - want.data[i]));
      }
      res.max_abs = scale;
      res.rel_diff = diff / Math.max(scale, 1e-12);
      if (y.dims.join() !== want.shape.join()) throw new Error(`output dims ${y.dims}, want ${want.shape}`);
      if (!(res.rel_diff < 1e-4)) throw new Error(`differs from the reference: relative ${res.rel_diff}`);
      res.ok = true;
    } catch (e) {
      res.ok = false;
      res.error = String(e.message || e).split("\n")[0];
      failed = true;
    }
    console.log(JSON.stringify(res));
  }
  process.exit(failed ? 1 : 0);
}

main();
