#!/usr/bin/env bash
# What only a GPU can show, in stages that each fit one device call (10 minutes), logs and results under $OUT.
#
#   bash benchmarks/gpu_session.sh STAGE [STAGE ...]      stages, in the order to run them:
#     tests      CUDA-only tests and the kernel tests, compiled for real (~3-5 min)
#     kernels    benchmarks: fused loss and spectral norm against eager and compiled PyTorch (~2-4 min)
#     race       benchmarks: the training step, cifar10 at batch 64/256/1024, reference vs fastacgan (~5-8 min)
#     race-isic  the same for isic64 and isic128 (~8-10 min; split with RACE_K="isic64" / "isic128" if need be)
#     data       DALI tests on the GPU, then benchmarks: the loaders and the CIFAR-10 epoch from JPEG (needs DALI and
#                the data) (~5-8 min)
#     quality    benchmarks/quality.py: fastacgan and the reference, QUALITY_STEPS steps each (~6-9 min)
#   Every stage ends by writing $OUT/goals.md from all the benchmark JSON files of this machine so far.
#
# Before the first call, here:
#   ../shared/tools/gpu-wheels.sh                        DALI wheels -> .gpu-wheels/part-* (git-ignored)
#   mkdir -p .data/cifar10-jpeg && cp ../shared/data/cifar10-jpeg/*.tar.gz .data/cifar10-jpeg/   (git-ignored, 19 MB)
# Calls, back to back (the machine goes back after 30 s idle, and with it what the earlier calls left):
#   1. carry [".data"]: "bash benchmarks/gpu_session.sh tests kernels"   (no DALI needed)
#   2..n. carry [".gpu-wheels/part-aa"], [".gpu-wheels/part-ab"], ... one per call, each with a stage:
#         "bash benchmarks/gpu_session.sh race", then "race-isic", ...
#   then "bash benchmarks/gpu_session.sh data" once every part is there (DALI is installed when all are),
#   and "quality". Copy $OUT/goals.md (and quality.md) into benchmarks/RESULTS.md with $OUT/versions.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
KEEP=/tmp/fastacgan-gpu  # survives between calls while the machine stays warm
mkdir -p "$OUT" "$KEEP" /tmp/site
# the checkout itself on the path (fastacgan maps fastacgan.kernels to ./kernels): nothing to build or install
export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=$KEEP/inductor TRITON_CACHE_DIR=$KEEP/triton
[ -d .data/cifar10-jpeg ] && export FASTACGAN_DATA=$PWD/.data
LOG=$OUT/session.log

say() { echo "[gpu_session $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

setup() {
  if [ ! -f $KEEP/dali.done ] && ls .gpu-wheels/part-* >/dev/null 2>&1; then
    rm -rf /tmp/wheels && mkdir -p /tmp/wheels
    # all parts present -> one valid tar; until then tar fails and DALI waits for the next call
    if cat .gpu-wheels/part-* | tar -x -C /tmp/wheels 2>/dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/wheels/*.whl &&
        touch $KEEP/dali.done && say "DALI installed"
    else
      say "DALI wheels incomplete ($(ls .gpu-wheels/part-* | wc -l) parts so far)"
    fi
  fi
  if ls .whl/*.whl >/dev/null 2>&1 && [ ! -f $KEEP/whl.done ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && touch $KEEP/whl.done
  fi
  {
    date -u
    git rev-parse HEAD 2>/dev/null || true
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)"
    python3 -c "import nvidia.dali as d; print('dali', d.__version__)" 2>/dev/null || echo "dali missing"
    python3 -c "import pytest_benchmark as b; print('pytest-benchmark', b.__version__)" 2>/dev/null
    echo "data: ${FASTACGAN_DATA:-none}"
  } >"$OUT/versions.txt" 2>&1
}

bench() {  # bench NAME LIMIT_S pytest-args...
  local name=$1 limit=$2
  shift 2
  say "stage $name: pytest $*"
  timeout "$limit" python3 -m pytest -q -p no:cacheprovider "$@" --benchmark-only \
    --benchmark-json="$KEEP/bench-$name.json" 2>&1 | tee -a "$LOG" | tail -n 60
  say "stage $name: exit ${PIPESTATUS[0]}"
  [ -f "$KEEP/bench-$name.json" ] && cp "$KEEP/bench-$name.json" "$OUT/"
}

goals() {
  local files=("$KEEP"/bench-*.json)
  [ -e "${files[0]}" ] || return 0
  python3 benchmarks/goals.py "${files[@]}" >"$OUT/goals.md" 2>>"$LOG" && say "goals.md from ${files[*]##*/}"
}

[ $# -gt 0 ] || set -- help
for stage in "$@"; do
  case $stage in
    tests | kernels | race | race-isic | data | quality) ;;
    *)
      echo "usage: bash benchmarks/gpu_session.sh STAGE ...; stages: tests kernels race race-isic data quality" >&2
      exit 2
      ;;
  esac
done
setup
for stage in "$@"; do
  case $stage in
    tests)
      say "stage tests"
      timeout 560 python3 -m pytest -q -rs -p no:cacheprovider --durations=15 tests/test_kernel_acgan_loss.py \
        tests/test_kernel_spectral_norm.py tests/test_fast_path.py tests/test_sample.py tests/test_loaders.py \
        tests/test_kernel_aot.py 2>&1 | tee -a "$LOG" | tail -n 80
      say "stage tests: exit ${PIPESTATUS[0]}"
      ;;
    kernels) bench kernels 560 benchmarks/test_bench_acgan_loss.py benchmarks/test_bench_spectral_norm.py ;;
    race) bench race 570 benchmarks/test_bench_race.py -k "training_step and cifar10" ;;
    race-isic) bench "race-${RACE_K:-isic}" 570 benchmarks/test_bench_race.py -k "training_step and ${RACE_K:-isic}" ;;
    data)
      say "stage data: DALI tests (the GPU decoder against PIL), then the loader benchmarks"
      timeout 120 python3 -m pytest -q -rs -p no:cacheprovider tests/test_loaders.py -k dali 2>&1 | tee -a "$LOG" | tail -n 20
      bench data 450 benchmarks/test_bench_loaders.py benchmarks/test_bench_race.py -k "loader or epoch"
      ;;
    quality)
      say "stage quality"
      rm -rf "$KEEP/quality"
      timeout 570 python3 benchmarks/quality.py --steps "${QUALITY_STEPS:-3000}" --out "$KEEP/quality" 2>&1 |
        tee -a "$LOG" | tail -n 30
      say "stage quality: exit ${PIPESTATUS[0]}"
      cp "$KEEP"/quality/quality.{md,json} "$KEEP"/quality/*_samples.png "$OUT/" 2>/dev/null
      ;;
  esac
done
goals
