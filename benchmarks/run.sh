#!/usr/bin/env bash
# Record a benchmark run: builds the corpus if missing, then `tfdenoise bench` into results/.
#   benchmarks/run.sh [--quick]   (PHOTOS=/path/to/photos CORPUS=/path/to/corpus to override)
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS=${PHOTOS:-/work/photos}
CORPUS=${CORPUS:-/work/corpus}
if [ ! -f "$CORPUS/corpus.json" ]; then
  python tools/make_corpus.py "$PHOTOS" "$CORPUS" -n 3000 --exclude-split test
fi
mode=full
if [ "${1:-}" = "--quick" ]; then mode=quick; fi
python -m tfdenoise bench "$@" --corpus "$CORPUS" \
  --json "benchmarks/results/${mode}-$(basename "$CORPUS")-$(nproc)cpu-$(date +%Y%m%d-%H%M).json"
