#!/bin/bash
# The scores a candidate for the bundled model must show (issue "A bundled model for real
# photos"), each from the command a reader can re-run, JSON and logs into OUT_DIR:
#   Kodak24 under the papers' protocol (1 pass), Kodak24 stored files under every realistic
#   condition (1 pass), the whole predict command on stored jpeg-noise / jpeg-30 files at its
#   defaults, and centre crops of the real noisy photos beside a reference model.
# usage: tools/score_model.sh MODEL OUT_DIR [REFERENCE_MODEL]   (reference default: bundled)
# Kodak24 and rni6 are never trained on: they are the benchmark and the visual check.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/score_model.sh MODEL OUT_DIR [REFERENCE_MODEL]}
out=${2:?usage: tools/score_model.sh MODEL OUT_DIR [REFERENCE_MODEL]}
reference=${3:-bundled}
mkdir -p "$out"
kodak=../shared/data/kodak24
gaussian=gaussian-15,gaussian-25,gaussian-50
realistic=gaussian-15,gaussian-25,gaussian-50,prototype,jpeg-noise,jpeg-30,correlated,jpeg-mild
set -x
tfdenoise evaluate "$kodak" --all --protocol paper --conditions "$gaussian" --baselines none \
    --ensemble 1 --model "$model" --json "$out/kodak24-paper.json" > "$out/paper.log" 2>&1
tfdenoise evaluate "$kodak" --all --conditions "$realistic" --baselines none --ensemble 1 \
    --model "$model" --json "$out/kodak24-stored.json" > "$out/stored.log" 2>&1
python tools/predict_scores.py "$kodak" "$out/predict-files" --condition jpeg-noise \
    --condition jpeg-30 --predict-arg=--model --predict-arg="$model" \
    --json "$out/predict-scores.json" > "$out/predict-scores.log" 2>&1
python tools/real_noise_crops.py ../shared/data/rni6 "$out/rni6.png" \
    --model "reference=$reference" --model "candidate=$model" > "$out/rni6.log" 2>&1
