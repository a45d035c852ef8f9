# Sourced by the device calls that train with the project's commands (bench/gpu_run.sh,
# bench/gpu_loso_run.sh): record the card and versions in $OUT/device.log, install the carried
# Django wheels (.gpu/whl) and link the carried fields where analysis.datasets reads them
# (../shared/data, the developer layout).  Expects $OUT; returns non-zero when a step fails.
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import sys, torch, torchvision; print(sys.version.split()[0], torch.__version__, torchvision.__version__)"
} 2>&1 | tee "$OUT/device.log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
  || return 1
export PYTHONPATH=/tmp/site
mkdir -p ../shared/data/ihc && ln -sfn "$PWD/.gpu/deepliif_train" ../shared/data/ihc/deepliif_train || return 1
if [ -d .gpu/ihc_train ]; then ln -sfn "$PWD/.gpu/ihc_train" ../shared/data/ihc_train || return 1; fi
