#!/usr/bin/env bash
# For a session lent a GPU (the device tool): run what only a GPU can show, in one call, logs under $OUT.
#   here, first:  ../shared/tools/gpu-wheels.sh   (DALI wheels -> .gpu-wheels/, git-ignored), and
#                 pip download --no-deps -d .whl pytest-benchmark py-cpuinfo   (if the GPU machine lacks them)
#   the call:     bash benchmarks/gpu_session.sh   with carry [".gpu-wheels/part-aa", ...] and [".whl"]
# Then copy $OUT/goals.md (medians, and each goal met or not) into benchmarks/RESULTS.md with $OUT/versions.txt.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/site
if ls .gpu-wheels/part-* >/dev/null 2>&1; then
  mkdir -p /tmp/wheels && cat .gpu-wheels/part-* | tar -x -C /tmp/wheels
  python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/wheels/*.whl
fi
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
{
  date -u; git rev-parse HEAD 2>/dev/null || true; nvidia-smi --query-gpu=name,driver_version --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c "import nvidia.dali as d; print('dali', d.__version__)" || echo "dali missing"
} 2>&1 | tee "$OUT/versions.txt"
python3 -m pytest -q -rs tests/ 2>&1 | tee "$OUT/tests.txt"
python3 -m pytest -q benchmarks/ --benchmark-only --benchmark-json="$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
python3 benchmarks/goals.py "$OUT/bench.json" 2>&1 | tee "$OUT/goals.md"
