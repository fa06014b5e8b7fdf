#!/usr/bin/env bash
# Reproduce the shipped models/baseline/2: the recipe ladder (pctrain.recipe:
# every rung judged on the validation split, then seeds 2 and 3 of the final
# recipe; each run checkpointed every epoch, so re-running resumes and skips
# what has finished), the three seeds' test-set comparison (pctrain.compare:
# the test set read once per final model), then seed 1 packaged as version 2
# (calibrate, evaluate, export ONNX + TF.js, manifest), its int8 copy, the
# out-of-distribution block fitted for it, and the parity check and
# evaluation through the serving runtimes. Needs `bash scripts/setup.sh`
# first. The ladder alone is many hours on 2 cores (docs/training.md).
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3
RUN=${RUN:-runs/baseline2-seed1}
OUT=${OUT:-../models/baseline/2}
$PY -u -m pctrain.recipe --runs runs
$PY -m pctrain.compare --runs runs --out results
$PY -m pctrain.package --run "$RUN" --name baseline --version 2 --out "$OUT" \
  --reproduce "bash training/reproduce-baseline2.sh"
$PY -m pctrain.quantize "$OUT"
$PY -m pctrain.ood --models ../models --out results --run "baseline=$RUN" --write-manifests
cd ..
node dist/src/tools/parity.js "${OUT#../}"
node dist/src/tools/evaluate.js "${OUT#../}"
