#!/usr/bin/env bash
# Issue 16's one device call (bench/GPU.md): is post-processing at the network's pace on the lent GPU?
# 1. a few seconds: analysis.postprocess on CUDA against the greedy reference and the CPU (random maps);
# 2. bench/gpu_throughput.py with TRAINED weights (the shipped starter; plus .gpu/fcn-r101.pt when it was
#    carried), and fcn-resnet101 with random weights for comparison with the 2026-11-27 run (11.9 Mpx/s):
#    per network an eager and a compiled row - post-process share per batch (after and before), model-only
#    ceiling, end-to-end over a 40960² SYNTHETIC slide.  Rows that would start after BUDGET_S are skipped.
# Everything lands in $OUT (gpu-throughput.json -> bench/RESULTS-gpu.json, the logs).  <= 5 minutes.
# Usage: bash bench/gpu_throughput_run.sh [BUDGET_S]   (run tool: timeout_s 330; carry .gpu only for an r101)
set -u -o pipefail
BUDGET=${1:-170}
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import sys, torch, torchvision; print(sys.version.split()[0], torch.__version__, torchvision.__version__)"
} 2>&1 | tee "$OUT/device.log"
timeout 60 python3 - <<'PY' 2>&1 | tee "$OUT/postprocess-check.log"
import numpy as np, torch
from analysis.postprocess import _reference_extract_points, extract_points
rng, bad, n = np.random.default_rng(0), 0, 0
for k in range(40):
    logits = torch.from_numpy(rng.normal(size=(4, 3, 96, 96)) * rng.uniform(0.5, 6)).float()
    if k % 2:
        logits = torch.round(logits * 2) / 2  # plateaus
    probs = logits.softmax(1).bfloat16().float() if k % 3 == 0 else logits.softmax(1)
    cpu, gpu = extract_points(probs, 0.5, 3.0, 0.3), extract_points(probs.cuda(), 0.5, 3.0, 0.3)
    ref = _reference_extract_points(probs.cuda(), 0.5, 3.0, 0.3)
    for a, b, c in zip(cpu, gpu, ref):
        n += len(a)
        bad += not all(np.array_equal(getattr(a, f), getattr(b, f)) and np.array_equal(getattr(b, f), getattr(c, f))
                       for f in ("xy", "labels", "scores"))
print(f"postprocess on CUDA: {160 - bad}/160 maps equal to the CPU and to the reference ({n} points)")
PY
EXTRA=()
if [ -f .gpu/fcn-r101.pt ]; then EXTRA+=(--checkpoint .gpu/fcn-r101.pt); fi
timeout $((BUDGET + 110)) python3 bench/gpu_throughput.py --budget-s "$BUDGET" "${EXTRA[@]}" \
  --random-backbone resnet101 --json "$OUT/gpu-throughput.json" 2>&1 | tee "$OUT/gpu-throughput.log"
echo "done"
