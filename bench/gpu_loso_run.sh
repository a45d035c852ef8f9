#!/usr/bin/env bash
# Issue 15 item 5 on the lent GPU machine (bench/GPU.md, "The paper's network on real tissue"):
# FCN-ResNet101, DeepLabV3-ResNet101 and U-Net trained from scratch leave-one-source-out on the real
# Ki-67 fields (nine runs in parallel, bench/gpu_train.py --suite loso), each scored on the source it
# never saw, with the classic detector on the same data.  Everything worth keeping goes under $OUT.
# Carry: .gpu (wheels in .gpu/whl; .gpu/deepliif_train and .gpu/ihc_train copied from ../shared/data).
# Usage: bash bench/gpu_loso_run.sh [TRAIN_SECONDS] [RUNS]   (RUNS: comma list, default all nine)
set -u -o pipefail
TRAIN_S=${1:-240}; RUNS=${2:-}
OUT=${OUT:-/tmp/gpu-out}
source bench/gpu_prepare.sh || exit 1
[ -d .gpu/ihc_train ] || { echo "carry .gpu with .gpu/ihc_train (bench/GPU.md)"; exit 1; }
W=/tmp/gpu-loso
SEL=(); [ -n "$RUNS" ] && SEL=(--runs "$RUNS")
python3 bench/gpu_train.py --suite loso "${SEL[@]}" --smoke --out $W/smoke 2>&1 | tee -a "$OUT/device.log" || exit 1
python3 bench/gpu_train.py --suite loso "${SEL[@]}" --auto-steps $W/smoke --train-seconds "$TRAIN_S" --out $W/main \
  2>&1 | tee "$OUT/train.log"
# Cards, scores and logs only: a ResNet101 model is ~100-200 MB, over what comes back (16 MiB a file, 64 MiB in all).
tar czf "$OUT/results.tgz" -C $W --exclude='*.pt' main smoke
echo "done"
