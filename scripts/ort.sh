#!/usr/bin/env bash
# Installs the ONNX Runtime CPU library from the npm registry into $1 (a cache folder).
# --ignore-scripts: the package's install script fetches GPU providers online, which fails here.
set -euo pipefail
dir=$1; version=$2
lib="$dir/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
if [ ! -f "$lib" ]; then
  mkdir -p "$dir"
  (cd "$dir" && npm install --silent --no-audit --no-fund --ignore-scripts "onnxruntime-node@$version" >/dev/null)
fi
test -f "$lib" || { echo "ort: $lib missing after install" >&2; exit 1; }
