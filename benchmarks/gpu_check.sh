#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (under 5 minutes):
#   1. build hashsearch with its CUDA kernels (HASHSEARCH_CUDA=ON: fail if nvcc is missing),
#      for this GPU's architecture only (a quicker build);
#   2. run the GPU tests (the backend contract on the CUDA backend, and tests/backends/test_cuda.py);
#   3. run the GPU benchmark (benchmarks/gpu_bench.py: 10M x 64-bit codes, nq 1/100/10000,
#      k 10/1000/5000) beside faiss-gpu when it installs, FAISS CPU otherwise;
#   4. print a summary.
#
#   benchmarks/gpu_check.sh [VENV_DIR]     (default .venv-gpu; results in gpu-check/)
#
# Needs Python 3.11+, a C++17 compiler, nvcc (CUDA 12+), network access for pip, or a
# venv that already has numpy, pybind11, scikit-build-core, cmake, ninja and the test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-gpu}
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')

if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
HASHSEARCH_CUDA=ON "$PY" -m pip install -q --no-build-isolation -e ".[test]" \
  -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$arch" 2>&1 | tail -5
"$PY" -m pip install -q faiss-gpu-cu12 2>/dev/null && echo "faiss-gpu installed" || echo "faiss-gpu not installable here; FAISS CPU is compared"
"$PY" -c "from hashsearch.backends.cuda import cuda_info; print(cuda_info())" | tee "$OUT/cuda_info.txt"

echo "== GPU tests"
set +e
HASHSEARCH_NUM_THREADS=2 "$PY" -m pytest -q -m gpu tests/backends -p no:cacheprovider 2>&1 | tee "$OUT/tests.txt" | tail -15
tests_rc=${PIPESTATUS[0]}
echo "== GPU benchmark"
timeout 180 "$PY" benchmarks/gpu_bench.py --json "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.txt"
bench_rc=${PIPESTATUS[0]}
set -e

echo "== summary ($(( $(date +%s) - start )) s)"
echo "GPU: $(cat "$OUT/gpu.txt")"
echo "tests: $(tail -1 "$OUT/tests.txt") (rc $tests_rc)"
echo "benchmark rc $bench_rc; table in $OUT/bench.txt, JSON in $OUT/gpu_bench.json"
exit $(( tests_rc || bench_rc ))
