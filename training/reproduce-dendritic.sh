#!/usr/bin/env bash
# Reproduce the shipped models/dendritic/1: grow dendrites on the baseline
# run of seed 1 (runs/baseline-seed1, from reproduce-baseline.sh or its
# committed final.pt) with the default schedule (dendrites on conv1..conv4,
# patience 2, cycles of at most 4 epochs annealed from 5e-4, at most 2
# dendrites per neuron, 1 retry), checkpointed every epoch (re-running
# resumes); then calibrate, export ONNX + TF.js, write the manifest, check
# parity and evaluate through the serving runtimes. Needs
# `bash scripts/setup.sh` first. About 45-60 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3
BASE=${BASE:-runs/baseline-seed1}
RUN=${RUN:-runs/dendritic-seed1}
OUT=${OUT:-../models/dendritic/1}
$PY -m pctrain.grow --base "$BASE" --out "$RUN" --seed 1
$PY -m pctrain.package --run "$RUN" --name dendritic --version 1 --out "$OUT" \
  --reproduce "bash training/reproduce-dendritic.sh"
cd ..
node dist/src/tools/parity.js "${OUT#../}"
node dist/src/tools/evaluate.js "${OUT#../}"
