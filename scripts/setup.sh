#!/usr/bin/env bash
# Install what the tests and the training code need on a fresh machine
# (Debian, root, Node.js 20+): Debian packages for PyTorch, the official
# Fashion-MNIST split and Prometheus (server and promtool, for the monitoring
# tests), then the npm dependencies, then the TypeScript build.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-torch python3-onnx python3-numpy python3-pytest python3-matplotlib dataset-fashion-mnist prometheus chromium python3-grpcio python3-grpc-tools python3-pil fonts-dejavu-core)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# onnxruntime-node's install step would try to download CUDA binaries; the
# CPU binaries ship inside the package. package.json "allowScripts" denies
# that script (npm 11 with install-script approvals); for npm releases that
# still run every dependency's scripts, this variable makes it exit at once.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
