#!/bin/bash
# Scores of the real-stage3 model beside the bundled one, Kodak24 and rni6 (never trained on)
set -x
cd /work/main
M=${1:-/work/train-runs/real-stage3/best.keras}
K=/work/shared/data/kodak24
E=/work/evals
tfdenoise evaluate $K --all --protocol paper --conditions gaussian-15,gaussian-25,gaussian-50 --baselines none --ensemble 1 --model $M --json $E/kodak24-paper.json > $E/new-paper.log 2>&1
tfdenoise evaluate $K --all --conditions gaussian-15,gaussian-25,gaussian-50,prototype,jpeg-noise,jpeg-30,correlated --baselines none --ensemble 1 --model $M --json $E/new-stored.json > $E/new-stored.log 2>&1
tfdenoise evaluate $K --all --conditions gaussian-15,gaussian-25,gaussian-50,prototype,jpeg-noise,jpeg-30,correlated --baselines none --ensemble 1 --json $E/bundled-stored.json > $E/bundled-stored.log 2>&1
python tools/predict_scores.py $K $E/ps-new --condition jpeg-noise --condition jpeg-30 --predict-arg=--model --predict-arg=$M --json $E/ps-new.json > $E/ps-new.log 2>&1
python tools/predict_scores.py $K $E/ps-bundled --condition jpeg-noise --condition jpeg-30 --json $E/ps-bundled.json > $E/ps-bundled.log 2>&1
python tools/real_noise_crops.py /work/shared/data/rni6 $E/rni6.png --model "bundled model=bundled" --model "real-stage3=$M" > $E/rni6.log 2>&1
for i in 1 2 3; do
  for m in bundled new; do
    rm -rf /tmp/speed-out
    if [ $m = new ]; then arg="--model $M"; else arg=""; fi
    python -m tfdenoise.predict /work/speed-photos -o /tmp/speed-out --ensemble 1 $arg 2>&1 | grep "MP/s" | sed "s/^/$m round $i: /" >> $E/speed.log
  done
done
