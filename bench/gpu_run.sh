#!/usr/bin/env bash
# The one device call for the lent GPU machine (bench/GPU.md): train + evaluate the detectors
# (bench/gpu_train.py, issue 3), then the GPU throughput bench (bench/gpu_throughput.py, issue 8)
# in whatever time is left.  Everything worth keeping is written under $OUT.
# Carry: .gpu (wheels of Django, asgiref, sqlparse, django-auditlog in .gpu/whl; the DeepLIIF fields
# in .gpu/deepliif_train).  Usage: bash bench/gpu_run.sh [TRAIN_SECONDS] [THROUGHPUT_BUDGET_S]
set -u -o pipefail
TRAIN_S=${1:-240}; TP_BUDGET=${2:-100}
OUT=${OUT:-/tmp/gpu-out}
source bench/gpu_prepare.sh || exit 1
W=/tmp/gpu-train
python3 bench/gpu_train.py --smoke --out $W/smoke 2>&1 | tee -a "$OUT/device.log" || exit 1
python3 bench/gpu_train.py --auto-steps $W/smoke --train-seconds "$TRAIN_S" --out $W/main 2>&1 | tee "$OUT/train.log"
# Results (no model weights: the ResNet101 ones are ~100-200 MB) + the r18 fine-tune, split under 16 MiB.
tar czf "$OUT/results.tgz" -C $W --exclude='*.pt' main smoke
if [ -f $W/main/r18-ft/train/model.pt ]; then split -b 15m $W/main/r18-ft/train/model.pt "$OUT/r18-ft.pt.part-"; fi
timeout $((TP_BUDGET + 90)) python3 bench/gpu_throughput.py --budget-s "$TP_BUDGET" --json "$OUT/gpu-throughput.json" \
  2>&1 | tee "$OUT/gpu-throughput.log"
echo "done"
