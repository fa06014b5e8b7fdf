#!/usr/bin/env bash
# Reproduce the shipped models/baseline/1 from scratch: train (15 epochs,
# seed 1, checkpointed every epoch: re-running resumes), calibrate, evaluate,
# export ONNX + TF.js, write the manifest, then check parity and evaluate the
# artifact through the serving runtimes. Needs `bash scripts/setup.sh` first.
# About 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3
RUN=${RUN:-runs/baseline-seed1}
OUT=${OUT:-../models/baseline/1}
$PY -m pctrain.train --out "$RUN" --seed 1 --epochs 15
$PY -m pctrain.package --run "$RUN" --name baseline --version 1 --out "$OUT" \
  --reproduce "bash training/reproduce-baseline.sh"
cd ..
node dist/src/tools/parity.js "${OUT#../}"
node dist/src/tools/evaluate.js "${OUT#../}"
