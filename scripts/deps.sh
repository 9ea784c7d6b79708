#!/usr/bin/env bash
# Installs what chanopt's tests and demo need on a fresh Debian machine, skipping what is there.
set -euo pipefail
pkgs=(python3-onnx libonnx-testdata libonnx-dev protobuf-compiler dataset-fashion-mnist
      python3-torch python3-torchvision python3-scipy python3-numpy chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
