#!/usr/bin/env bash
# The baseline / dendritic / parameter-matched-control measurement, one
# training at a time (these machines have 2 cores). Every step resumes from
# its last checkpoint and returns at once when already finished, so after an
# interruption run the same command again:
#
#   nohup bash training/campaign.sh > training/runs/campaign.log 2>&1 &
#
# Steps (default order: the shipped pair first, then the other seeds, then
# the perforated runs on the same baselines):
#   base N   baseline CNN, seed N, 15 epochs                    runs/baseline-seedN
#   dend N   dendrites grown on baseline seed N                 runs/dendritic-seedN
#   pb N     dendrites grown on baseline seed N with the Perforated
#            Backpropagation dendrite phase (--method perforated)  runs/dendritic-pb-seedN
#   ctrl N   baseline widened to the dendritic parameter count,
#            trained from scratch for as many epochs as the
#            dendritic model had in all (base + growth)         runs/control-seedN
# then `python3 -m pctrain.compare` and `python3 -m pctrain.plot` write
# training/results/. Needs `bash scripts/setup.sh` first.
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3

# 994,034 parameters: within 1% of the dendritic model with two dendrites on
# conv1..conv4 (1,002,026); see README.md, "Dendritic optimization".
CONTROL_NET=(--channels 40 40 72 72 --dense 256)
BASE_EPOCHS=15

base() { $PY -m pctrain.train --out "runs/baseline-seed$1" --seed "$1" --epochs $BASE_EPOCHS; }
dend() { $PY -m pctrain.grow --base "runs/baseline-seed$1" --out "runs/dendritic-seed$1" --seed "$1"; }
pb() { $PY -m pctrain.grow --base "runs/baseline-seed$1" --out "runs/dendritic-pb-seed$1" --seed "$1" --method perforated; }
# The same budget in epochs as the dendritic model of the same seed: base + growth.
ctrl() {
  local growth
  growth=$($PY -c "import json; print(json.load(open('runs/dendritic-seed$1/history.json'))[-1]['epoch'])")
  $PY -m pctrain.train --out "runs/control-seed$1" --seed "$1" --epochs $((BASE_EPOCHS + growth)) "${CONTROL_NET[@]}"
}

steps=("$@")
if ((${#steps[@]} == 0)); then
  steps=(base 1 dend 1 base 2 dend 2 ctrl 1 base 3 dend 3 ctrl 2 ctrl 3 pb 1 pb 2 pb 3)
fi
for ((i = 0; i < ${#steps[@]}; i += 2)); do
  echo "== $(date -u +%FT%TZ) ${steps[i]} seed ${steps[i + 1]}"
  "${steps[i]}" "${steps[i + 1]}"
done
$PY -m pctrain.compare --runs runs --out results
$PY -m pctrain.plot --runs runs --out results/dendrite-growth.png
