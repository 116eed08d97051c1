#!/usr/bin/env bash
# What only a GPU can show, in stages that each fit one device call (10 minutes), logs and results under $OUT.
#
#   bash benchmarks/gpu_session.sh STAGE [STAGE ...]      stages (times measured on an H100, 2026-11-23):
#     tests      the kernel tests compiled for real, the CUDA-only tests (225 s in one process; more since
#                --graph-step's tests). Spread over TEST_WORKERS (8) processes with pytest-xdist where it is
#                installed (the GPU image has it): the time is mostly Triton and Inductor compiling on the CPU
#     kernels    benchmarks: fused loss and spectral norm against eager and compiled PyTorch, each launched from
#                Python and replayed from a CUDA graph, SN tile sweep (107 s; more since the SN update group);
#                G's upsample convolutions, plain vs UpsampleConv2d (bf16, channels-last, batch 256)
#     race       benchmarks: the training step, cifar10 at batch 64/256/1024, reference vs fastacgan (and
#                fastacgan_graph, --graph-step) (165 s without fastacgan_graph)
#     race-isic  the same for RACE_K=isic64 or RACE_K=isic128 (default both: may not fit one call) (isic64: 116 s)
#     data       DALI's GPU tests, then benchmarks: the loaders and the CIFAR-10 epoch from JPEG (needs DALI) (250 s)
#     quality    benchmarks/quality.py: fastacgan and the reference, QUALITY_STEPS (3000) steps each, one run per
#                seed of QUALITY_SEEDS (default 0) (1500 steps, one seed: 92 s)
#   A machine's start took ~30 s; installing DALI from the 3 parts ~10 s.
#   Every stage ends by writing $OUT/goals.md from all the benchmark JSON files of this machine so far.
#
# Before the first call, here (both folders are git-ignored):
#   ../shared/tools/gpu-wheels.sh && bash benchmarks/pack_gpu_wheels.sh
#        DALI and its libraries, repacked as one xz-compressed tar (177 MB instead of 256) in 3 parts: part-aa
#        small enough to travel with .data, part-ab and part-ac just under a call's 64 MiB
#   mkdir -p .data/cifar10-jpeg && cp ../shared/data/cifar10-jpeg/*.tar.gz .data/cifar10-jpeg/      (19 MB)
#   git rev-parse HEAD > .data/COMMIT      (the device's copy of .git may be older than the tree it gets)
# Stages given together share the call: BUDGET_S (default 580 s) is split as they go, a stage gets what is left,
# and one that cannot get 60 s is skipped. Calls go back to back: the machine goes back after 30 s idle, and
# with it what the earlier calls left (DALI is installed by the call that brings the last wheel part).
# With 15 minutes of device time (the lease since 2026-12; a start costs ~1 minute of it), what decides the open
# issues first, DALI left out (its three wheel parts cost three calls; #5 is resolved):
#   1. carry [".data"]   TESTS_S=170 KERNELS_S=190 BUDGET_S=560 bash benchmarks/gpu_session.sh tests kernels race
#        the CUDA tests (#3, #4, #6), the kernel goals (#3, #4), the cifar10 race with --graph-step (#6);
#        TESTS_S, KERNELS_S, RACE_S cap a stage (seconds) so that the later ones keep their share
#   2. (only if >= 5 minutes are left, at once)   QUALITY_SEEDS="0 1" QUALITY_STEPS=1500 BUDGET_S=240 ... quality
#   then give the machine back.
# With 30 minutes:
#   1. carry [".data", ".gpu-wheels/part-aa"]   tests kernels
#   2. carry [".gpu-wheels/part-ab"]            race
#   3. carry [".gpu-wheels/part-ac"]            data
#   4.                                          quality
#   5. (if device time is left)                 race-isic (RACE_K=isic64, then isic128)
# Copy $OUT/goals.md (and quality.md) into benchmarks/RESULTS.md with $OUT/versions.txt. The commit that
# goals.md and the JSON name is what the device's copy of .git says (on 2026-11-23: the session's starting
# commit, not the tree it ran): versions.txt gives .data/COMMIT's too.
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
BUDGET_S=${BUDGET_S:-580}
START=$SECONDS

say() { echo "[gpu_session $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

setup() {
  if [ ! -f $KEEP/dali.done ] && ls .gpu-wheels/part-* >/dev/null 2>&1; then
    rm -rf /tmp/wheels && mkdir -p /tmp/wheels
    # all parts present -> one valid tar (plain or xz); until then it is cut short and DALI waits for the next call
    if cat .gpu-wheels/part-* | python3 -c "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|*').extractall('/tmp/wheels', filter='data')" 2>/dev/null; then
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
    [ -f .data/COMMIT ] && echo "commit (from .data/COMMIT): $(cat .data/COMMIT)"
    echo "commit (the device's .git): $(git rev-parse HEAD 2>/dev/null)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)"
    python3 -c "import nvidia.dali as d; print('dali', d.__version__)" 2>/dev/null || echo "dali missing"
    python3 -c "import pytest_benchmark as b; print('pytest-benchmark', b.__version__)" 2>/dev/null
    echo "data: ${FASTACGAN_DATA:-none}"
  } >"$OUT/versions.txt" 2>&1
}

left() {  # left LIMIT_S: prints the stage's time limit, LIMIT_S or what is left of the call's budget (less 10 s)
  local rest=$((BUDGET_S - (SECONDS - START) - 10))
  echo $((rest < $1 ? rest : $1))
}

bench() {  # bench NAME LIMIT_S pytest-args...
  local name=$1 limit
  limit=$(left "$2")
  shift 2
  say "stage $name: pytest $*"
  # benchmarks not started DEADLINE_MARGIN_S (60) before the limit are skipped, so that the JSON of those that
  # ran is written (a pytest killed by `timeout` mid-benchmark writes none); timeout stays the hard stop
  FASTACGAN_BENCH_DEADLINE=$(($(date +%s) + limit - ${DEADLINE_MARGIN_S:-60})) \
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
  if [ "$(left 600)" -lt 60 ]; then
    say "stage $stage skipped: $(left 600) s left of BUDGET_S=$BUDGET_S"
    continue
  fi
  case $stage in
    tests)
      say "stage tests"
      # the kernels compiled for real against the references, the CUDA-only tests (the compiled step with the fused
      # kernels against the eager one, compile + CUDA graphs, the fast path against eager fp32, no recompilation);
      # DALI's GPU tests are in `data`, the compile-only check in CI
      # several processes on the one GPU where pytest-xdist is there: the stage's time is compilation on the CPU
      par=()
      python3 -c "import xdist" 2>/dev/null && [ "${TEST_WORKERS:-8}" -gt 1 ] && par=(-n "${TEST_WORKERS:-8}")
      timeout "$(left "${TESTS_S:-560}")" python3 -m pytest -q -rs -p no:cacheprovider --durations=15 "${par[@]}" \
        tests/test_kernel_acgan_loss.py \
        tests/test_kernel_spectral_norm.py tests/test_compiled_fused.py tests/test_fast_path.py tests/test_sample.py \
        tests/test_reference_parity.py tests/test_train.py::test_image_metrics_on_cuda \
        tests/test_train.py::test_a_cuda_run_sets_cudnn_autotuning \
        tests/test_export.py::test_a_program_exported_on_a_gpu_runs_there \
        2>&1 | tee -a "$LOG" | tail -n 80
      say "stage tests: exit ${PIPESTATUS[0]}"
      ;;
    kernels) bench kernels "${KERNELS_S:-560}" benchmarks/test_bench_acgan_loss.py benchmarks/test_bench_spectral_norm.py \
      benchmarks/test_bench_layers.py ;;
    race) bench race "${RACE_S:-570}" benchmarks/test_bench_race.py -k "training_step and cifar10" ;;
    race-isic) bench "race-${RACE_K:-isic}" 570 benchmarks/test_bench_race.py -k "training_step and ${RACE_K:-isic}" ;;
    data)
      say "stage data: DALI tests (the GPU decoder against PIL), then the loader benchmarks"
      timeout "$(left 120)" python3 -m pytest -q -rs -p no:cacheprovider tests/test_loaders.py -k dali 2>&1 | tee -a "$LOG" | tail -n 20
      bench data 450 benchmarks/test_bench_loaders.py benchmarks/test_bench_race.py -k "loader or epoch"
      ;;
    quality)
      # QUALITY_SEEDS="0 1": one run per seed (the figures move by a few points between seeds); the first
      # seed's JSON and sample grids come back, every seed's table (a call returns at most 8 files)
      first=1
      for seed in ${QUALITY_SEEDS:-0}; do
        say "stage quality, seed $seed"
        rm -rf "$KEEP/quality-$seed"
        timeout "$(left 570)" python3 benchmarks/quality.py --steps "${QUALITY_STEPS:-3000}" --seed "$seed" \
          --out "$KEEP/quality-$seed" 2>&1 | tee -a "$LOG" | tail -n 12
        say "stage quality, seed $seed: exit ${PIPESTATUS[0]}"
        cp "$KEEP/quality-$seed/quality.md" "$OUT/quality-seed$seed.md" 2>/dev/null
        [ $first = 1 ] && cp "$KEEP/quality-$seed"/quality.json "$KEEP/quality-$seed"/*_samples.png "$OUT/" 2>/dev/null
        first=0
      done
      ;;
  esac
done
goals
