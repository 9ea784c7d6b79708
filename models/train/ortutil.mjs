// Shared helpers for the ONNX Runtime check scripts: loading onnxruntime-node, reading IDX and .npy.
// onnxruntime-node is looked up in $ORT_NODE_MODULES (default /tmp/ortcache/node_modules).

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import path from "node:path";

export function loadOrt() {
  const nodeModules = process.env.ORT_NODE_MODULES || "/tmp/ortcache/node_modules";
  const require = createRequire(path.join(nodeModules, "noop.js"));
  return require("onnxruntime-node");
}

export function readIDX(file) {
  let b = readFileSync(file);
  if (file.endsWith(".gz")) b = gunzipSync(b);
  if (b[0] !== 0 || b[1] !== 0 || b[2] !== 8) throw new Error(`${file}: not an unsigned-byte IDX file`);
  const nd = b[3];
  const dims = [];
  for (let i = 0; i < nd; i++) dims.push(b.readUInt32BE(4 + 4 * i));
  return { dims, data: b.subarray(4 + 4 * nd) };
}

// Minimal .npy v1/v2 reader for little-endian float32 C-order arrays.
export function readNpy(file) {
  const b = readFileSync(file);
  if (b.toString("latin1", 1, 6) !== "NUMPY") throw new Error(`${file}: not .npy`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = major === 1 ? 10 + hlen : 12 + hlen;
  const header = b.toString("latin1", off - hlen, off);
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True")) throw new Error(`${file}: want <f4 C order: ${header}`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(",").filter((s) => s.trim()).map(Number);
  const raw = b.subarray(off);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  return { shape, data };
}
