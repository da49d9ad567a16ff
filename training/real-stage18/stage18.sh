#!/bin/bash
# real-stage17 epoch 5 (bundled) continued: L1, lower peak lr (3e-5, cosine to 0) and larger
# patches (192^2, batch 8: about the same pixels per step as 16 x 128^2) for more context at the
# bottom level; correlated and gaussian-25 scored per epoch on the val split, every epoch snapshotted
cd /work/train-wt; export PYTHONPATH=/work/train-wt
R=/work/train-runs
python -m tfdenoise fit /work/corpus-s2 --runs-dir $R --run-id real-stage18 --noise blind \
    --degradation clean 0.1 --degradation compressed 0.3 --degradation uniform 0.5 \
    --degradation spatial 0.6 \
    --init-from /work/main/training/real-stage17/epoch5.keras \
    --widths 32,64,128,256 --blocks 0,0,2,4 --patch-size 192 --batch-size 8 \
    --loss l1 --lr 3e-5 --clip-norm 1.0 --epochs 12 --steps-per-epoch 250 \
    --val-condition correlated --val-condition gaussian-25 --select-by correlated \
    --patience 50 --split 0.9,0.1,0 --seed 21 > $R/real-stage18.log 2>&1
