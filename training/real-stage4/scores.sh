#!/bin/bash
# Scores of a real-stage4 model on Kodak24 (never trained on) and rni6, beside the bundled
# model where a figure needs it. usage: training/real-stage4/scores.sh MODEL OUT_DIR
set -x
cd "$(dirname "$0")/../.."
M=${1:?model}; E=${2:?out dir}; mkdir -p "$E"
K=../shared/data/kodak24
G=gaussian-15,gaussian-25,gaussian-50
R=gaussian-15,gaussian-25,gaussian-50,prototype,jpeg-noise,jpeg-30,correlated
tfdenoise evaluate $K --all --protocol paper --conditions $G --baselines none --ensemble 1 --model "$M" --json "$E/kodak24-paper.json" > "$E/paper.log" 2>&1
tfdenoise evaluate $K --all --conditions $R --baselines none --ensemble 1 --model "$M" --json "$E/kodak24-stored.json" > "$E/stored.log" 2>&1
python tools/predict_scores.py $K "$E/ps" --condition jpeg-noise --condition jpeg-30 --predict-arg=--model --predict-arg="$M" --json "$E/predict-scores.json" > "$E/predict-scores.log" 2>&1
python tools/real_noise_crops.py ../shared/data/rni6 "$E/rni6.png" --model "bundled model=bundled" --model "new=$M" > "$E/rni6.log" 2>&1
