#!/bin/bash
# real-stage18 epoch 5 (bundled) continued with 256^2 patches in batches of 4 (same pixels per
# step), lr 2e-5; correlated, gaussian-25 and jpeg-30 scored per epoch, every epoch snapshotted
cd /work/train-wt; export PYTHONPATH=/work/train-wt
R=/work/train-runs
python -m tfdenoise fit /work/corpus-s2 --runs-dir $R --run-id real-stage19 --noise blind \
    --degradation clean 0.1 --degradation compressed 0.3 --degradation uniform 0.5 \
    --degradation spatial 0.6 \
    --init-from /work/main/training/real-stage18/epoch5.keras \
    --widths 32,64,128,256 --blocks 0,0,2,4 --patch-size 256 --batch-size 4 \
    --loss l1 --lr 2e-5 --clip-norm 1.0 --epochs 12 --steps-per-epoch 250 \
    --val-condition correlated --val-condition gaussian-25 --val-condition jpeg-30 \
    --select-by jpeg-30 --patience 50 --split 0.9,0.1,0 --seed 22 > $R/real-stage19.log 2>&1
