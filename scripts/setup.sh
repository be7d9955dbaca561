#!/usr/bin/env bash
# Create (or update) the development environment: a virtualenv with hashsearch
# installed editable, its compiled core built, and every extra the tests need.
#
#   scripts/setup.sh [VENV_DIR]        (default .venv; `make demo` / `make test` call this)
#
# torch is pinned to the CPU build where no NVIDIA GPU is present: an unpinned
# `torch` from PyPI pulls a multi-GB CUDA build. Set TORCH_INDEX_URL (e.g.
# https://download.pytorch.org/whl/cpu) when your pip has no local CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip

torch_args=("torch==$TORCH_VERSION")
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found, installing torch $TORCH_VERSION (CUDA build) and faiss-gpu is left to you"
else
  echo "setup: no GPU, installing the CPU build of torch $TORCH_VERSION"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then torch_args+=(--index-url "$TORCH_INDEX_URL"); fi
fi
"${PIP[@]}" install -q "${torch_args[@]}"

# Build requirements in the venv, then an editable install without build isolation,
# so rebuilds reuse build/ (scikit-build-core's build dir) incrementally.
"${PIP[@]}" install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
"${PIP[@]}" install -q --no-build-isolation -e ".[train,data,plot,test,lint]"
"$VENV/bin/python" -c "import hashsearch, hashsearch._core; print('setup: hashsearch', hashsearch.__version__, 'backends', hashsearch.available_backends(), 'SIMD', hashsearch.simd_level())"
